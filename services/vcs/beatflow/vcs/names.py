"""Validation of user-chosen names: refs (git's check-ref-format rules), repositories, stems, users, blob keys."""

from __future__ import annotations

import re

from beatflow.common.errors import InvalidArgument

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,38}$")
_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+()-]{0,63}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_REF_FORBIDDEN = set(" ~^:?*[\\\x7f")


def check_ref_name(name: str, what: str = "branch") -> str:
    """Refuse names git would refuse (``git check-ref-format``) plus full commit ids (ambiguous)."""
    problem = _ref_problem(name)
    if problem:
        raise InvalidArgument(f"invalid {what} name {name[:80]!r}: {problem}")
    return name


def _ref_problem(name: str) -> str | None:
    if not name:
        return "empty"
    if len(name) > 200:
        return "longer than 200 characters"
    if any(ord(ch) < 32 or ch in _REF_FORBIDDEN for ch in name):
        return "contains a space, control character or one of ~^:?*[\\"
    if ".." in name:
        return "contains '..'"
    if "@{" in name or name == "@":
        return "contains '@{' or is '@'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "empty path component"
    if name.endswith("."):
        return "ends with '.'"
    if name.startswith("-"):
        return "starts with '-'"
    for part in name.split("/"):
        if part.startswith("."):
            return "a component starts with '.'"
        if part.endswith(".lock"):
            return "a component ends with '.lock'"
    if _HEX64_RE.match(name):
        return "looks like a commit id"
    return None


def check_repo_name(name: str) -> str:
    if not _REPO_RE.match(name) or name in {".", ".."} or name.endswith(".git"):
        raise InvalidArgument(
            f"invalid repository name {name[:80]!r}: use 1-100 of A-Z a-z 0-9 _ . - (not '.', '..' or ending '.git')"
        )
    return name


def check_username(name: str) -> str:
    if not _USER_RE.match(name):
        raise InvalidArgument(f"invalid username {name[:80]!r}: 1-39 of A-Z a-z 0-9 _ . -, starting alphanumeric")
    return name


def check_stem_name(name: str) -> str:
    if not _STEM_RE.match(name) or name != name.strip():
        raise InvalidArgument(
            f"invalid stem name {name[:80]!r}: 1-64 of letters, digits, space _ . + ( ) -, starting alphanumeric"
        )
    return name


def check_blob_key(key: str, what: str = "blob key") -> str:
    if not _HEX64_RE.match(key):
        raise InvalidArgument(f"invalid {what} {key[:80]!r}: expected 64 lowercase hex characters (SHA-256)")
    return key


def is_commit_id(text: str) -> bool:
    return bool(_HEX64_RE.match(text))
