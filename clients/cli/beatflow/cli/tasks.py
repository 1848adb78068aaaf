"""AI tasks from the shell: submit, follow progress over SSE, fetch the outputs, cancel on Ctrl-C."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from beatflow.cli import errors, ui
from beatflow.cli.api import Client
from beatflow.cli.errors import CliError
from beatflow.cli.transfer import download

TERMINAL = {"succeeded", "failed", "cancelled", "dead"}
RECONNECTS = 5
SSE_READ_TIMEOUT_S = 60.0  # the gateway sends a keep-alive every 15 s


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) per Server-Sent Event; comments and retry hints are skipped."""
    name, data = "message", ""
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "":
            if data:
                yield name, json.loads(data)
            name, data = "message", ""


def follow(client: Client, task: dict[str, Any], label: str, *, wait_s: float | None = None) -> dict[str, Any]:
    """The task once finished, with a live progress bar; Ctrl-C cancels it on the server.

    A dropped event stream is resumed after the last event seen. A task that
    did not succeed ends the command with the server's message. With ``wait_s``,
    a task still running after that many seconds ends the command (exit 1) and
    keeps running on the server.
    """
    task_id = task["task_id"]
    plain = not ui.err_is_terminal()  # logs and pipes get one line per stage change instead of a bar
    try:
        if plain:  # inside the try: from here on Ctrl-C cancels the task
            ui.info(f"{label}: task {task_id} {task['status']}")
        deadline = time.monotonic() + wait_s if wait_s is not None else None
        final = _watch(client, task, label, plain, deadline)
    except KeyboardInterrupt:
        try:
            client.post(f"/api/ai/tasks/{task_id}/cancel")
            message = f"interrupted: task {task_id} was cancelled on the server"
        except CliError as exc:
            message = f"interrupted; task {task_id} could not be cancelled: {exc.message}"
        raise CliError(message, errors.INTERRUPTED) from None
    if final["status"] != "succeeded":
        reason = final.get("error") or final["status"]
        raise CliError(f"{label} failed (task {task_id}, {final['status']}): {reason}", errors.FAILED)
    return final


def _until(lines: Iterable[str], deadline: float | None, task_id: str, label: str) -> Iterator[str]:
    """The stream's lines (keep-alives included) until ``deadline``; then a one-line error."""
    for line in lines:
        if deadline is not None and time.monotonic() > deadline:
            raise _timed_out(task_id, label)
        yield line


def _timed_out(task_id: str, label: str) -> CliError:
    return CliError(
        f"{label}: not finished in time; task {task_id} goes on on the server (`beatflow task {task_id}`)",
        errors.FAILED,
    )


def _watch(
    client: Client, task: dict[str, Any], label: str, plain: bool, deadline: float | None = None
) -> dict[str, Any]:
    task_id = task["task_id"]
    last_id = ""
    last_line = ""
    with ui.task_progress() as progress:
        bar = progress.add_task(label, total=1.0, completed=task.get("progress", 0.0), stage=task.get("stage", ""))
        for _attempt in range(RECONNECTS):
            params = {"after": last_id} if last_id else {}
            try:
                with client.stream(
                    "GET",
                    f"/api/ai/tasks/{task_id}/events",
                    params=params,
                    timeout=client._httpx.Timeout(10.0, read=_read_timeout(deadline)),
                ) as response:
                    for name, data in parse_sse(_until(response.iter_lines(), deadline, task_id, label)):
                        if name == "error":
                            raise CliError(f"{label}: {data.get('detail', 'progress stream failed')}", errors.FAILED)
                        last_id = data.get("event_id") or last_id
                        progress.update(bar, completed=data.get("progress", 0.0), stage=data.get("stage", ""))
                        line = f"{label}: {data.get('progress', 0.0) * 100:3.0f}% {data.get('stage', '')}".rstrip()
                        if plain and line != last_line:
                            ui.info(line)
                            last_line = line
                        if name == "done":
                            return dict(data["task"])
            except CliError as exc:
                if exc.code != errors.UNREACHABLE:
                    raise
            current = client.get(f"/api/ai/tasks/{task_id}")
            if current["status"] in TERMINAL:
                return dict(current)
            if deadline is not None and time.monotonic() > deadline:
                raise _timed_out(task_id, label)
            time.sleep(1.0)
    raise CliError(f"lost the progress stream of task {task_id}; `beatflow task {task_id}` to look again")


def _read_timeout(deadline: float | None) -> float:
    """A read never blocks past the deadline by more than a second (keep-alives come every 15 s)."""
    if deadline is None:
        return SSE_READ_TIMEOUT_S
    return max(1.0, min(SSE_READ_TIMEOUT_S, deadline - time.monotonic() + 1.0))


def output_paths(files: dict[str, Any], out: Path | None, default_stem: str) -> dict[str, Path]:
    """Where each named output goes: ``out`` for a single file, ``out`` with -1, -2 ... for several."""
    names = sorted(files)
    paths: dict[str, Path] = {}
    for i, name in enumerate(names):
        ext = "." + files[name]["filename"].rsplit(".", 1)[-1]
        if out is None:
            base = Path(default_stem + (f"-{i + 1}" if len(names) > 1 else "") + ext)
        elif len(names) == 1:
            base = out
        else:
            base = out.with_name(f"{out.stem}-{i + 1}{out.suffix or ext}")
        paths[name] = base
    return paths


def fetch_outputs(client: Client, files: dict[str, Any], paths: dict[str, Path]) -> None:
    """Download each output (hash-checked, atomic; a rerun resumes a partial file)."""
    with ui.transfer_progress() as progress:
        for name, path in paths.items():
            info = files[name]
            bar = progress.add_task(f"downloading {path.name}", total=None)
            download(
                client,
                info["download_url"],
                info["blob_key"],
                path,
                path.parent,
                advance=ui.bar_callbacks(progress, bar)[0],
                total=ui.bar_callbacks(progress, bar)[1],
            )
