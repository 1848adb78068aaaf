"""``beatflow``: version a folder of stems against a BeatFlow server; generate and separate from the shell."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from beatflow.cli import config, errors, tasks, ui
from beatflow.cli.api import ApiError, Client
from beatflow.cli.errors import CliError
from beatflow.cli.hashing import sha256_file
from beatflow.cli.sync import switch
from beatflow.cli.transfer import upload
from beatflow.cli.workdir import Folder, State, Status

EXISTS_BATCH = 1000

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")


def _client(server: str = "") -> Client:
    return Client(config.server(server), config.token())


def _in_folder() -> tuple[Folder, State, Client]:
    folder = Folder.find()
    state = folder.load()
    return folder, state, _client(state.server)


def _short(commit_id: str) -> str:
    return commit_id[:12] if commit_id else "(no commits)"


def _branch_head(client: Client, repo_id: str, branch: str) -> str:
    refs = client.get(f"/api/repositories/{repo_id}/branches")["refs"]
    return next((r["commit_id"] for r in refs if r["name"] == branch), "")


def _require_branch(state: State) -> str:
    if not state.branch:
        raise CliError(
            f"the folder is at commit {_short(state.head)}, not on a branch; "
            "`beatflow checkout BRANCH` (or `beatflow branch NAME --checkout`) first",
            errors.USAGE,
        )
    return state.branch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="beatflow")
def cli() -> None:
    """Version a folder of audio stems on a BeatFlow server, and run its AI from the shell.

    Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 not signed in, 4 not found,
    5 conflict (branch moved, merge conflict, local changes in the way),
    6 server unreachable, 7 bad local file or download, 130 interrupted.
    """


# --- account ---------------------------------------------------------------------------


@cli.command()
@click.option("--server", help=f"Server URL (default: $BEATFLOW_SERVER, the last one, or {config.DEFAULT_SERVER}).")
@click.option("--username", "-u", help="Prompted when omitted.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--signup", is_flag=True, help="Create the account first.")
def login(server: str | None, username: str | None, password_stdin: bool, signup: bool) -> None:
    """Sign in (or sign up) and keep the token in your config directory (mode 0600)."""
    url = (server or config.server()).rstrip("/")
    username = username or click.prompt("Username")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=signup)
    with Client(url) as client:
        try:
            body = client.post(
                f"/api/auth/{'signup' if signup else 'signin'}", {"username": username, "password": password}
            )
        except ApiError as exc:
            if exc.status in (401, 409, 422):  # wrong password, name taken, or a name/password the server refuses
                raise CliError(exc.detail, errors.AUTH if exc.status == 401 else errors.FAILED) from None
            raise
    path = config.save(config.Credentials(url, body["access_token"], body["user"]["username"]))
    ui.info(f"signed in to {url} as {body['user']['username']} (token saved in {path})")


@cli.command()
def logout() -> None:
    """Forget the stored token."""
    ui.info("signed out" if config.forget() else "was not signed in")


@cli.command()
@json_option
def whoami(as_json: bool) -> None:
    """The signed-in user."""
    with _client() as client:
        me = client.get("/api/auth/me")
        if as_json:
            ui.emit_json({**me, "server": client.server})
        else:
            click.echo(f"{me['username']} on {client.server}")


# --- working folders -------------------------------------------------------------------------


@cli.command()
@click.argument("name")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--public", is_flag=True, help="Readable by everyone (default: private).")
@click.option("--description", "-d", default="")
def init(name: str, directory: Path, public: bool, description: str) -> None:
    """Create the repository NAME on the server and make DIRECTORY (default: here) its working folder."""
    if (directory / ".beatflow" / "state.json").exists():
        raise CliError(f"{directory} is already a BeatFlow working folder", errors.USAGE)
    with _client() as client:
        repo = client.post(
            "/api/repositories/create",
            {"name": name, "description": description, "visibility": "public" if public else "private"},
        )
        Folder.create(directory, State(client.server, repo["id"], repo["name"], repo["default_branch"]))
    ui.info(f"created repository {repo['name']} ({repo['id']}); {directory} is its working folder")


def _resolve_repo(client: Client, ref: str) -> dict[str, Any]:
    """A repository by id, by name, or by owner/name."""
    if "/" not in ref:
        try:
            return dict(client.get(f"/api/repositories/{ref}"))
        except ApiError as exc:
            if exc.status not in (404, 422):
                raise
    owner, _, name = ref.rpartition("/")
    token = ""
    while True:
        page = client.get("/api/repositories", params={"page_size": 200, "page_token": token})
        for repo in page["repositories"]:
            if repo["name"] == name and (not owner or repo["owner_username"] == owner):
                return dict(repo)
        token = page.get("next_page_token") or ""
        if not token:
            raise CliError(f"no repository {ref!r} that you can read", errors.NOT_FOUND)


@cli.command()
@click.argument("repo")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--branch", "-b", help="Default: the repository's default branch.")
def clone(repo: str, directory: Path | None, branch: str | None) -> None:
    """Download a repository's stems into a new working folder (REPO: id, name or owner/name)."""
    with _client() as client:
        found = _resolve_repo(client, repo)
        target = directory or Path(found["name"])
        if target.exists() and any(target.iterdir()):
            raise CliError(f"{target} exists and is not empty", errors.USAGE)
        branch = branch or found["default_branch"]
        state = State(client.server, found["id"], found["name"], branch)
        head = _branch_head(client, found["id"], branch)
        folder = Folder.create(target, state)
        if head:
            commit = client.get(f"/api/vcs/checkout/{found['id']}", params={"ref": head})
            switch(client, folder, state, commit)
    ui.info(f"cloned {found['name']} into {target} (branch {branch}, head {_short(state.head)})")


def _print_status(state: State, status: Status) -> None:
    where = f"On branch {state.branch}" if state.branch else "Not on a branch"
    click.echo(f"{where}, head {_short(state.head)} ({state.repo_name} on {state.server})")
    for label, names in (("new", status.new), ("modified", status.modified), ("deleted", status.deleted)):
        for name in names:
            click.echo(f"  {label + ':':<10} {name}")
    for name, why in sorted(status.problems.items()):
        click.echo(f"  {'skipped:':<10} {name}: {why}")
    if status.clean:
        click.echo("nothing to commit")


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Stems new, modified or deleted since the head (by content hash), and files skipped."""
    folder = Folder.find()
    state = folder.load()
    st = folder.status(state)
    if as_json:
        ui.emit_json(
            {
                "repo_id": state.repo_id,
                "branch": state.branch,
                "head": state.head,
                "new": st.new,
                "modified": st.modified,
                "deleted": st.deleted,
                "unchanged": st.unchanged,
                "skipped": st.problems,
                "ignored": st.ignored,
            }
        )
    else:
        _print_status(state, st)


def _missing(client: Client, keys: list[str]) -> list[str]:
    missing: list[str] = []
    for i in range(0, len(keys), EXISTS_BATCH):
        missing += client.post("/api/audio/exists", {"blob_keys": keys[i : i + EXISTS_BATCH]})["missing"]
    return missing


@cli.command()
@click.option("--message", "-m", required=True)
@json_option
def commit(message: str, as_json: bool) -> None:
    """Upload the changed stems the server lacks, then commit them onto the folder's head.

    The commit is a compare-and-swap on the head the folder is at: when someone
    else moved the branch meanwhile, nothing is committed and `beatflow pull`
    brings their work in (keeping yours).
    """
    folder, state, client = _in_folder()
    branch = _require_branch(state)
    scan = folder.scan()
    st = folder.status(state, scan)
    for name, why in sorted(st.problems.items()):
        ui.info(f"skipped {name}: {why}")
    if st.clean:
        if as_json:
            ui.emit_json({"commit": None, "uploaded": [], "branch": branch, "head": state.head})
        else:
            click.echo("nothing to commit")
        return
    changed = [scan.stems[n] for n in (*st.new, *st.modified)]
    with client:
        missing = set(_missing(client, sorted({s.sha256 for s in changed})))
        uploads = {s.sha256: s for s in changed if s.sha256 in missing}
        with ui.transfer_progress() as progress:
            for key, stem in uploads.items():
                bar = progress.add_task(f"uploading {stem.path.name}", total=stem.size)
                upload(client, stem.path, key, advance=ui.bar_callbacks(progress, bar)[0])
        body: dict[str, Any] = {
            "message": message,
            "branch": branch,
            "stems": [{"name": s.name, "blob_key": s.sha256} for s in changed],
            "inherit_stems": True,
            "remove_stems": st.deleted,
        }
        if state.head:  # compare-and-swap on the folder's head (a first commit has none to name)
            body["parent_commit_id"] = state.head
        try:
            made = client.post(f"/api/vcs/commit/{state.repo_id}", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            remote = _branch_head(client, state.repo_id, branch)
            raise CliError(
                f"the branch {branch!r} moved on the server (it is at {_short(remote)}, this folder is at "
                f"{_short(state.head)}); nothing was committed. Run `beatflow pull` to bring in the new work "
                "(your changes are kept), then commit again.",
                errors.CONFLICT,
            ) from None
    state.set_head(made)
    folder.save(state)
    summary = {
        "commit": made["id"],
        "branch": branch,
        "uploaded": sorted(uploads),
        "new": st.new,
        "modified": st.modified,
        "deleted": st.deleted,
    }
    if as_json:
        ui.emit_json(summary)
    else:
        click.echo(
            f"[{branch} {_short(made['id'])}] {message}\n"
            f"  {len(st.new)} new, {len(st.modified)} modified, {len(st.deleted)} deleted; "
            f"uploaded {len(uploads)} blob(s)"
        )


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite local changes that are in the way.")
def pull(force: bool) -> None:
    """Fast-forward the folder to its branch's head on the server (local changes are never overwritten)."""
    folder, state, client = _in_folder()
    branch = _require_branch(state)
    with client:
        remote = _branch_head(client, state.repo_id, branch)
        if not remote:
            raise CliError(f"the branch {branch!r} does not exist on the server", errors.NOT_FOUND)
        if remote == state.head:
            click.echo("already up to date")
            return
        if state.head:
            bases = client.get(f"/api/vcs/merge-base/{state.repo_id}", params={"a": state.head, "b": remote})[
                "merge_bases"
            ]
            if state.head not in bases and not force:
                raise CliError(
                    f"the branch {branch!r} no longer contains this folder's head {_short(state.head)}; "
                    f"`beatflow checkout {branch} --force` to take the server's version",
                    errors.CONFLICT,
                )
        target = client.get(f"/api/vcs/checkout/{state.repo_id}", params={"ref": remote})
        updated = switch(client, folder, state, target, force)
    click.echo(
        f"{branch}: {_short(remote)}; updated {len(updated)} stem(s)" + (f": {', '.join(updated)}" if updated else "")
    )


@cli.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Overwrite local changes that are in the way.")
def checkout(ref: str, force: bool) -> None:
    """Switch the folder to a branch, tag or commit."""
    folder, state, client = _in_folder()
    with client:
        branches = {r["name"] for r in client.get(f"/api/repositories/{state.repo_id}/branches")["refs"]}
        target = client.get(f"/api/vcs/checkout/{state.repo_id}", params={"ref": ref})
        switch(client, folder, state, target, force)
    state.branch = ref if ref in branches else None
    folder.save(state)
    where = f"branch {ref}" if state.branch else "a detached commit (commit needs a branch)"
    click.echo(f"at {_short(state.head)}, {where}")


@cli.command()
@click.argument("ref", required=False)
@click.option("-n", "--max-count", default=50, show_default=True, type=click.IntRange(1, 200))
@json_option
def log(ref: str | None, max_count: int, as_json: bool) -> None:
    """Commits reachable from REF (default: the folder's head), newest first."""
    _folder, state, client = _in_folder()
    ref = ref or state.head or state.branch or ""
    if not ref and not as_json:
        click.echo("no commits yet")
        return
    with client:
        commits = client.get(f"/api/vcs/history/{state.repo_id}", params={"ref": ref, "page_size": max_count})[
            "commits"
        ]
    if as_json:
        ui.emit_json(commits)
        return
    for c in commits:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c["timestamp"]))
        mark = "*" if c["id"] == state.head else " "
        stems = ", ".join(s["name"] for s in c["stems"])
        click.echo(f"{mark} {_short(c['id'])}  {when}  {c['author_username']:<12} {c['message']}  [{stems}]")


@cli.command()
@click.argument("base", required=False)
@click.argument("head", required=False)
@click.option(
    "--audio",
    is_flag=True,
    help="Also compare the sound of each stem on the server (a task): changed time regions, gain, deltas.",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(1, 3600),
    default=300.0,
    show_default=True,
    help="With --audio: seconds to wait for the comparison (it goes on on the server after that).",
)
@json_option
def diff(base: str | None, head: str | None, audio: bool, wait_s: float, as_json: bool) -> None:
    """Stems changed: none given, local files against the head; BASE alone, BASE against the head.

    With --audio (BASE needed), each stem's perceptual diff: where it sounds different (regions
    in HEAD's time), a gain-only change in dB, and loudness, peak, tempo, key and duration deltas.
    """
    folder, state, client = _in_folder()
    if audio and base is None:
        raise CliError("--audio compares two commits on the server: give BASE (and HEAD)", errors.USAGE)
    if base is None:
        st = folder.status(state)
        scan = folder.scan()
        rows = [
            {
                "name": n,
                "change": change,
                "base_blob": state.stems[n].blob_key if n in state.stems else None,
                "head_blob": scan.stems[n].sha256 if n in scan.stems else None,
            }
            for change, names in (("added", st.new), ("changed", st.modified), ("removed", st.deleted))
            for n in names
        ]
        result: dict[str, Any] = {"base": state.head, "head": "(working folder)", "stems": rows, "metadata": []}
    else:
        head = head or state.head
        with client:
            result = client.get(f"/api/vcs/diff/{state.repo_id}", params={"base": base, "head": head})
            if audio:
                out = client.get(f"/api/vcs/audio-diff/{state.repo_id}", params={"base": base, "head": head})
                task = tasks.follow(client, out["task"], "comparing audio", wait_s=wait_s)
                result["audio"] = (task.get("result") or {}).get("stems", {})
    if as_json:
        ui.emit_json(result)
        return
    signs = {"added": "+", "removed": "-", "changed": "~"}
    if "audio" in result:
        for name in sorted(result["audio"]):
            for line in _audio_lines(name, result["audio"][name]):
                click.echo(line)
    else:
        for s in result["stems"]:
            if s["change"] in signs:
                click.echo(f"{signs[s['change']]} {s['name']}")
    for m in result.get("metadata", []):
        click.echo(f"  {m['field']}: {m['base_value']} -> {m['head_value']}")


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def _audio_lines(name: str, d: dict[str, Any]) -> list[str]:
    """One stem's perceptual diff as text: the verdict, its regions (HEAD's time), then the deltas."""
    status = d.get("status", "")
    if status == "unchanged":
        return [f"= {name}: unchanged"]
    if status in ("added", "removed"):
        return [f"{'+' if status == 'added' else '-'} {name}: {status}"]
    gain = float(d.get("gain_db") or 0.0)
    if status == "gain_only":
        head = f"~ {name}: gain change {_signed(gain, 1)} dB (no changed regions)"
    else:
        regions = d.get("regions") or []
        head = f"~ {name}: {len(regions)} changed region{'s' if len(regions) != 1 else ''}"
        if abs(gain) >= 0.05:
            head += f", gain {_signed(gain, 1)} dB"
    offset = float(d.get("offset_s") or 0.0)
    if abs(offset) >= 0.001:
        head += f", starts {abs(offset):.3f} s {'later' if offset > 0 else 'earlier'}"
    lines = [head]
    for r in d.get("regions") or []:
        length = r["end_s"] - r["start_s"]
        lines.append(f"    {r['start_s']:8.2f} s - {r['end_s']:8.2f} s  ({length:.2f} s, score {r['score']:.2f})")
    summary = d.get("summary") or {}
    if summary:
        a, b = summary.get("from", {}), summary.get("to", {})
        key_a = f"{a.get('key_tonic', '')} {a.get('key_mode', '')}".strip()
        key_b = f"{b.get('key_tonic', '')} {b.get('key_mode', '')}".strip()
        if summary.get("key_reliable") is False:
            key = "key unclear"
        elif summary.get("key_changed"):
            key = f"key {key_a} -> {key_b}"
        else:
            key = f"key {key_b or '?'} (same)"
        tempo_delta = summary.get("tempo_delta_bpm", 0.0)
        tempo = "tempo unclear" if tempo_delta is None else f"tempo {_signed(tempo_delta, 1)} BPM"
        lines.append(
            f"    loudness {_signed(summary.get('loudness_delta_lu', 0.0), 1)} LU, "
            f"peak {_signed(summary.get('peak_delta_db', 0.0), 1)} dB, "
            f"{tempo}, {key}, "
            f"duration {_signed(summary.get('duration_delta_s', 0.0), 2)} s"
        )
    return lines


@cli.command()
@click.argument("name", required=False)
@click.option("--delete", "-d", is_flag=True, help="Delete the branch NAME.")
@click.option("--checkout", "-c", "switch_to", is_flag=True, help="Move the folder onto the new branch.")
@json_option
def branch(name: str | None, delete: bool, switch_to: bool, as_json: bool) -> None:
    """List branches, or create NAME at the folder's head."""
    folder, state, client = _in_folder()
    with client:
        if name and delete:
            client.request("DELETE", f"/api/repositories/{state.repo_id}/branches/{name}")
            click.echo(f"deleted branch {name}")
            return
        if name:
            if not state.head:
                raise CliError("nothing committed yet: commit before branching", errors.USAGE)
            client.post(f"/api/repositories/{state.repo_id}/branches", {"name": name, "from_ref": state.head})
            if switch_to:
                state.branch = name
                folder.save(state)
            click.echo(
                f"created branch {name} at {_short(state.head)}" + ("; the folder is on it" if switch_to else "")
            )
            return
        refs = client.get(f"/api/repositories/{state.repo_id}/branches")["refs"]
    if as_json:
        ui.emit_json(refs)
        return
    for r in refs:
        click.echo(f"{'*' if r['name'] == state.branch else ' '} {r['name']:<24} {_short(r['commit_id'])}")


@cli.command()
@click.argument("name", required=False)
@click.option("--target", "-t", default="", help="Branch, tag or commit (default: the folder's head).")
@click.option("--message", "-m", default="")
@json_option
def tag(name: str | None, target: str, message: str, as_json: bool) -> None:
    """List tags, or tag the folder's head (or --target) as NAME."""
    _folder, state, client = _in_folder()
    with client:
        if name:
            made = client.post(
                f"/api/repositories/{state.repo_id}/tags",
                {"name": name, "target": target or state.head, "message": message},
            )
            click.echo(f"tagged {_short(made['commit_id'])} as {name}")
            return
        refs = client.get(f"/api/repositories/{state.repo_id}/tags")["refs"]
    if as_json:
        ui.emit_json(refs)
        return
    for r in refs:
        click.echo(f"{r['name']:<24} {_short(r['commit_id'])}  {r['message']}")


@cli.command()
@click.argument("source")
@click.option("--ours", multiple=True, metavar="STEM", help="Keep this folder's branch's version of STEM.")
@click.option("--theirs", multiple=True, metavar="STEM", help="Take SOURCE's version of STEM.")
@click.option("--message", "-m", default="")
def merge(source: str, ours: tuple[str, ...], theirs: tuple[str, ...], message: str) -> None:
    """Merge the branch (or tag, commit) SOURCE into the folder's branch on the server, then update the folder."""
    folder, state, client = _in_folder()
    into = _require_branch(state)
    strategies = {**{s: "ours" for s in ours}, **{s: "theirs" for s in theirs}}
    with client:
        try:
            result = client.post(
                f"/api/vcs/merge/{state.repo_id}",
                {
                    "from_ref": source,
                    "into_branch": into,
                    "expected_head": state.head or None,
                    "message": message,
                    "stem_strategies": strategies,
                },
            )
        except ApiError as exc:
            conflicts = (exc.body or {}).get("conflicts") if isinstance(exc.body, dict) else None
            if exc.status == 409 and conflicts:
                names = ", ".join(c["name"] for c in conflicts)
                raise CliError(
                    f"merge conflict: {names} changed on both sides; nothing was merged. "
                    f"Choose per stem with --ours STEM or --theirs STEM",
                    errors.CONFLICT,
                ) from None
            if exc.status == 409:
                raise CliError(
                    f"the branch {into!r} moved on the server; `beatflow pull` first, then merge again", errors.CONFLICT
                ) from None
            raise
        if result["up_to_date"]:
            click.echo("already up to date")
            return
        updated = switch(client, folder, state, result["commit"])
    kind = "fast-forward" if result["fast_forward"] else "merge commit"
    click.echo(f"merged {source} into {into} ({kind} {_short(state.head)}); updated {len(updated)} stem(s)")


@cli.command()
@click.argument("commit_id")
@click.option("--message", "-m", default="")
def revert(commit_id: str, message: str) -> None:
    """Undo COMMIT_ID with a new commit on the folder's branch, then update the folder."""
    folder, state, client = _in_folder()
    branch_name = _require_branch(state)
    with client:
        try:
            made = client.post(
                f"/api/vcs/revert/{state.repo_id}",
                {
                    "commit_id": commit_id,
                    "branch": branch_name,
                    "expected_head": state.head or None,
                    "message": message,
                },
            )
        except ApiError as exc:
            if exc.status == 409:
                raise CliError(
                    f"cannot revert: {exc.detail}; `beatflow pull` first if the branch moved", errors.CONFLICT
                ) from None
            raise
        switch(client, folder, state, made)
    click.echo(f"[{branch_name} {_short(made['id'])}] {made['message']}")


@cli.command()
@click.option("--name", help="Name of the fork (default: the same name).")
@json_option
def fork(name: str | None, as_json: bool) -> None:
    """Fork the folder's repository into your account (no audio is copied); clone it to work on it."""
    _folder, state, client = _in_folder()
    with client:
        repo = client.post("/api/vcs/fork", {"repo_id": state.repo_id, "name": name})
    if as_json:
        ui.emit_json(repo)
    else:
        click.echo(
            f"forked {state.repo_name} as {repo['owner_username']}/{repo['name']} ({repo['id']}); "
            f"`beatflow clone {repo['id']}` to get a folder"
        )


# --- AI tasks -----------------------------------------------------------------------------


def _upload_input(client: Client, path: Path) -> str:
    key = sha256_file(path)
    if key in _missing(client, [key]):
        with ui.transfer_progress() as progress:
            bar = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)
            upload(client, path, key, advance=lambda n: progress.advance(bar, n))
    return key


def _run_task(client: Client, path: str, body: dict[str, Any], label: str) -> dict[str, Any]:
    return tasks.follow(client, client.post(path, body), label)


def _write_outputs(client: Client, task: dict[str, Any], out: Path | None, default: str, as_json: bool) -> None:
    paths = tasks.output_paths(task["files"], out, default)
    tasks.fetch_outputs(client, task["files"], paths)
    if as_json:
        ui.emit_json(
            {"task_id": task["task_id"], "files": {n: str(p) for n, p in paths.items()}, "result": task.get("result")}
        )
    else:
        for p in paths.values():
            click.echo(str(p))


audio_file = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


@cli.command()
@click.argument("prompt")
@click.option("--bpm", type=click.FloatRange(20, 300))
@click.option("--mood", default="")
@click.option("--genre", default="")
@click.option("--key", default="")
@click.option("--duration", type=click.FloatRange(0, 300, min_open=True), default=10.0, show_default=True)
@click.option("--seed", type=click.IntRange(0))
@click.option("--variations", type=click.IntRange(1, 4), default=1, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["wav", "flac", "mp3"]), default="wav", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (-1, -2 ... added for variations).",
)
@json_option
def generate(
    prompt: str,
    bpm: float | None,
    mood: str,
    genre: str,
    key: str,
    duration: float,
    seed: int | None,
    variations: int,
    fmt: str,
    output: Path | None,
    as_json: bool,
) -> None:
    """Generate music from a text PROMPT, following progress, and write the audio."""
    body: dict[str, Any] = {
        "prompt": prompt,
        "mood": mood,
        "genre": genre,
        "key": key,
        "duration": duration,
        "num_variations": variations,
        "format": fmt,
    }
    if bpm is not None:
        body["bpm"] = bpm
    if seed is not None:
        body["seed"] = seed
    with _client() as client:
        task = _run_task(client, "/api/ai/generate", body, "generating")
        _write_outputs(client, task, output, f"generated-{task['task_id'][:8]}", as_json)


@cli.command()
@click.argument("melody", type=audio_file)
@click.option("--prompt", default="")
@click.option("--bpm", type=click.FloatRange(20, 300))
@click.option("--mood", default="")
@click.option("--duration", type=click.FloatRange(0, 300, min_open=True), default=10.0, show_default=True)
@click.option("--seed", type=click.IntRange(0))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def hum(
    melody: Path,
    prompt: str,
    bpm: float | None,
    mood: str,
    duration: float,
    seed: int | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Make a beat that follows the hummed MELODY recording."""
    with _client() as client:
        body: dict[str, Any] = {
            "melody_blob": _upload_input(client, melody),
            "prompt": prompt,
            "mood": mood,
            "duration": duration,
        }
        if bpm is not None:
            body["bpm"] = bpm
        if seed is not None:
            body["seed"] = seed
        task = _run_task(client, "/api/ai/hum-to-beat", body, "humming to beat")
        _write_outputs(client, task, output, f"{melody.stem}-beat", as_json)


@cli.command()
@click.argument("audio", type=audio_file)
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the stems (default: <file>-stems).",
)
@click.option("--model", default="", help="Separation model (server default when omitted).")
@click.option("--two-stems", default="", metavar="STEM", help="Split into STEM and everything else.")
@json_option
def separate(audio: Path, out_dir: Path | None, model: str, two_stems: str, as_json: bool) -> None:
    """Split AUDIO into stems (drums, bass, vocals, other, ...) written into a folder."""
    out_dir = out_dir or audio.with_name(f"{audio.stem}-stems")
    with _client() as client:
        body = {"audio_blob": _upload_input(client, audio), "model": model, "two_stems": two_stems}
        task = _run_task(client, "/api/ai/separate-stems", body, "separating")
        files = task["files"]
        paths = {n: out_dir / f"{n}.{f['filename'].rsplit('.', 1)[-1]}" for n, f in files.items()}
        tasks.fetch_outputs(client, files, paths)
    if as_json:
        ui.emit_json({"task_id": task["task_id"], "files": {n: str(p) for n, p in paths.items()}})
    else:
        for p in paths.values():
            click.echo(str(p))


@cli.command()
@click.argument("audio", type=audio_file)
@json_option
def analyze(audio: Path, as_json: bool) -> None:
    """Detect the tempo, key and loudness of AUDIO."""
    with _client() as client:
        body = {"audio_blob": _upload_input(client, audio), "background": True}
        task = client.post("/api/ai/analyze-audio", body)["task"]
        final = tasks.follow(client, task, "analyzing")
    result = final.get("result") or {}
    if as_json:
        ui.emit_json(result)
        return
    for field in ("bpm", "key", "loudness_lufs", "peak_dbfs", "duration_s", "sample_rate", "channels"):
        if field in result:
            click.echo(f"{field:<14} {result[field]}")


@cli.command("task")
@click.argument("task_id")
@click.option("--cancel", is_flag=True, help="Cancel it.")
@json_option
def task_cmd(task_id: str, cancel: bool, as_json: bool) -> None:
    """A task's state (or cancel it)."""
    with _client() as client:
        task = client.post(f"/api/ai/tasks/{task_id}/cancel") if cancel else client.get(f"/api/ai/tasks/{task_id}")
    if as_json:
        ui.emit_json(task)
    else:
        click.echo(f"{task['task_id']}  {task['status']}  {task['progress'] * 100:.0f}%  {task.get('error') or ''}")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: expected failures are one line on stderr and an exit code, never a traceback."""
    try:
        cli.main(args=argv, prog_name="beatflow", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(errors.USAGE if exc.exit_code == 2 else exc.exit_code)
    except click.Abort:
        ui.info("aborted")
        sys.exit(errors.INTERRUPTED)
    except CliError as exc:
        ui.info(f"beatflow: {exc.message}")
        sys.exit(exc.code)
    except KeyboardInterrupt:
        ui.info("interrupted")
        sys.exit(errors.INTERRUPTED)
    except OSError as exc:
        ui.info(f"beatflow: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        sys.exit(errors.LOCAL_FILE)
