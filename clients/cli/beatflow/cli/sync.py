"""Bring a working folder to a commit without losing local work (checkout, pull, merge, revert, clone).

Only stems that differ between the folder's head and the target are touched.
A stem changed both locally and by the target is a conflict: nothing is
written and the command stops (unless forced), like git refusing to overwrite
uncommitted changes. Local changes to other stems are kept; forcing makes
every stem the target's (files of stems the target does not know stay). A run cut short
leaves files that already match the target, so running it again finishes.
"""

from __future__ import annotations

from typing import Any

from beatflow.cli import errors, ui
from beatflow.cli.api import Client
from beatflow.cli.errors import CliError
from beatflow.cli.transfer import download
from beatflow.cli.workdir import Folder, Scan, State


def _local_key(scan: Scan, name: str) -> str | None:
    if name in scan.stems:
        return scan.stems[name].sha256
    return "?" if name in scan.problem_stems else None


def plan(state: State, scan: Scan, commit: dict[str, Any], force: bool) -> tuple[list[str], list[str]]:
    """(stems to update, stems in conflict)."""
    target = {s["name"]: s["blob_key"] for s in commit.get("stems", [])}
    apply, conflicts = [], []
    for name in sorted(set(state.stems) | set(target)):
        head = state.stems[name].blob_key if name in state.stems else None
        want = target.get(name)
        local = _local_key(scan, name)
        if local == want or (head == want and not force):
            continue  # already there, or the target leaves it as it was (local changes stay unless forced)
        if local != head and not force:
            conflicts.append(name)
        else:
            apply.append(name)
    return apply, conflicts


def switch(client: Client, folder: Folder, state: State, commit: dict[str, Any], force: bool = False) -> list[str]:
    """Update the folder's files and head to ``commit``; the stems updated."""
    scan = folder.scan()
    apply, conflicts = plan(state, scan, commit, force)
    if conflicts:
        raise CliError(
            "local changes to " + ", ".join(conflicts) + " would be overwritten; commit them, move the files "
            "away, or use --force to discard them",
            errors.CONFLICT,
        )
    target = {s["name"]: s for s in commit.get("stems", [])}
    with ui.transfer_progress() as progress:
        for name in apply:
            stem = target.get(name)
            local = scan.stems.get(name)
            if stem is None:
                if local is not None:
                    local.path.unlink(missing_ok=True)
                continue
            dest = folder.path_for(name, stem.get("content_type", ""), scan)
            bar = progress.add_task(f"downloading {dest.name}", total=stem.get("size_bytes") or None)
            download(
                client,
                stem["download_url"],
                stem["blob_key"],
                dest,
                folder.part_dir,
                advance=ui.bar_callbacks(progress, bar)[0],
                total=ui.bar_callbacks(progress, bar)[1],
            )
    state.set_head(commit)
    folder.save(state)
    folder.scan()  # refresh the hash cache (a downloaded file is hashed once, here)
    return apply
