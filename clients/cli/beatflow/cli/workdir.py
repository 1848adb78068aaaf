"""A working folder: stem files at its top level, and ``.beatflow/`` recording where they came from.

``.beatflow/state.json`` holds the server, repository, branch (None when a
commit is checked out directly) and the head commit with its stems;
``.beatflow/index.json`` caches each file's SHA-256 keyed on its size and
modification time, so ``status`` on gigabytes of unchanged stems reads no audio.

A stem is a top-level file with an audio extension (.wav .flac .mp3 .ogg);
its name is the file name without the extension (``drums.wav`` is the stem
``drums``). Other files are listed as ignored. Files with an audio extension
that cannot be read or are not audio by content are reported as problems and
skipped: never uploaded, never committed, and a skipped file of a stem the head
has leaves that stem as it is on the server.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beatflow.cli import errors
from beatflow.cli.errors import CliError
from beatflow.cli.hashing import sha256_file

META = ".beatflow"
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga"}
EXTENSION_FOR_TYPE = {"audio/wav": ".wav", "audio/flac": ".flac", "audio/mpeg": ".mp3", "audio/ogg": ".ogg"}
STEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+()\-]{0,63}$")


def sniff(prefix: bytes) -> str:
    """The audio type by magic bytes ("" when not WAV, FLAC, MP3 or Ogg): names are not trusted."""
    if len(prefix) >= 12 and prefix[:4] in (b"RIFF", b"RF64") and prefix[8:12] == b"WAVE":
        return "audio/wav"
    if prefix[:4] == b"fLaC":
        return "audio/flac"
    if prefix[:4] == b"OggS":
        return "audio/ogg"
    if prefix[:3] == b"ID3" or (len(prefix) >= 2 and prefix[0] == 0xFF and prefix[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return ""


@dataclass
class HeadStem:
    blob_key: str
    content_type: str = "audio/wav"
    size_bytes: int = 0


@dataclass
class State:
    server: str
    repo_id: str
    repo_name: str
    branch: str | None
    head: str = ""
    stems: dict[str, HeadStem] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        stems = {name: HeadStem(**s) for name, s in data.get("stems", {}).items()}
        return cls(data["server"], data["repo_id"], data["repo_name"], data.get("branch"), data.get("head", ""), stems)

    def set_head(self, commit: dict[str, Any]) -> None:
        self.head = commit["id"]
        self.stems = {
            s["name"]: HeadStem(s["blob_key"], s.get("content_type") or "audio/wav", s.get("size_bytes", 0))
            for s in commit.get("stems", [])
        }


@dataclass
class LocalStem:
    name: str
    path: Path
    sha256: str
    size: int


@dataclass
class Scan:
    stems: dict[str, LocalStem]
    problems: dict[str, str]  # file name -> why it is skipped
    ignored: list[str]
    problem_stems: set[str]  # stem names whose file was skipped


@dataclass
class Status:
    new: list[str]
    modified: list[str]
    deleted: list[str]
    unchanged: list[str]
    problems: dict[str, str]
    ignored: list[str]

    @property
    def changed(self) -> set[str]:
        return {*self.new, *self.modified, *self.deleted}

    @property
    def clean(self) -> bool:
        return not self.changed


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(tmp, path)


class Folder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / META

    # --- metadata -------------------------------------------------------------------

    @classmethod
    def find(cls, start: Path | None = None) -> Folder:
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / META / "state.json").is_file():
                return cls(candidate)
        raise CliError(
            "not a BeatFlow working folder (no .beatflow here or above); use `beatflow init` or `beatflow clone`",
            errors.USAGE,
        )

    @classmethod
    def create(cls, root: Path, state: State) -> Folder:
        folder = cls(root.resolve())
        if (folder.meta / "state.json").exists():
            raise CliError(f"{root} is already a BeatFlow working folder", errors.USAGE)
        folder.meta.mkdir(parents=True, exist_ok=True)
        folder.save(state)
        return folder

    @property
    def part_dir(self) -> Path:
        return self.meta / "partial"

    def load(self) -> State:
        try:
            return State.from_json(json.loads((self.meta / "state.json").read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{self.meta / 'state.json'} is damaged: {exc}", errors.USAGE) from None

    def save(self, state: State) -> None:
        _write_json(self.meta / "state.json", asdict(state))

    def _load_index(self) -> dict[str, list[Any]]:
        try:
            data = json.loads((self.meta / "index.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # --- files ------------------------------------------------------------------------

    def scan(self) -> Scan:
        """Every stem file with its hash (cached on size and mtime), and the files skipped."""
        index = self._load_index()
        fresh: dict[str, list[Any]] = {}
        found: dict[str, list[LocalStem]] = {}
        problems: dict[str, str] = {}
        ignored: list[str] = []
        problem_stems: set[str] = set()
        with os.scandir(self.root) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                ext = path.suffix.lower()
                if ext not in AUDIO_EXTENSIONS or not entry.is_file():
                    ignored.append(entry.name)
                    continue
                name = path.stem
                try:
                    st = entry.stat()
                    cached = index.get(entry.name)
                    if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                        kind, sha = cached[2], cached[3]
                    else:
                        with open(path, "rb") as fh:
                            kind = sniff(fh.read(64))
                        sha = sha256_file(path) if kind else ""
                    fresh[entry.name] = [st.st_size, st.st_mtime_ns, kind, sha]
                except OSError as exc:
                    problems[entry.name] = f"unreadable ({exc.strerror})"
                    problem_stems.add(name)
                    continue
                if not kind:
                    problems[entry.name] = "not audio (not WAV, FLAC, MP3 or Ogg by content)"
                    problem_stems.add(name)
                elif not STEM_NAME.match(name):
                    problems[entry.name] = "not a usable stem name (letters, digits, space, _ . + ( ) -; up to 64)"
                else:
                    found.setdefault(name, []).append(LocalStem(name, path, sha, st.st_size))
        stems: dict[str, LocalStem] = {}
        for name, files in found.items():
            if len(files) > 1:
                for f in files:
                    problems[f.path.name] = f"more than one file for the stem '{name}'"
                problem_stems.add(name)
            else:
                stems[name] = files[0]
        if fresh != index:
            _write_json(self.meta / "index.json", fresh)
        return Scan(stems, problems, ignored, problem_stems)

    def status(self, state: State, scan: Scan | None = None) -> Status:
        scan = scan or self.scan()
        new, modified, deleted, unchanged = [], [], [], []
        for name, local in sorted(scan.stems.items()):
            head = state.stems.get(name)
            if head is None:
                new.append(name)
            elif head.blob_key != local.sha256:
                modified.append(name)
            else:
                unchanged.append(name)
        for name in sorted(state.stems):
            if name not in scan.stems and name not in scan.problem_stems:
                deleted.append(name)
        return Status(new, modified, deleted, unchanged, scan.problems, scan.ignored)

    def path_for(self, name: str, content_type: str, scan: Scan) -> Path:
        local = scan.stems.get(name)
        return local.path if local else self.root / (name + EXTENSION_FOR_TYPE.get(content_type, ".wav"))
