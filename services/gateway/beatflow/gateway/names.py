"""The naming rules vcs enforces, stated in the HTTP schema so a client learns them from the OpenAPI.

Each rule is a regular expression for the OpenAPI description (with look-aheads,
which JSON Schema's ECMA-262 patterns allow) plus the same check in Python for
validation, since pydantic's default regex engine has no look-around. The rules
mirror ``beatflow.vcs.names`` (git's ``check-ref-format`` for refs).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# Branch and tag names: git's rules (no "..", "//", "@{", component starting "." or ending ".lock",
# no trailing "/" or "."), no full commit id, 1-200 characters of a safe alphabet.
REF_PATTERN = (
    r"^(?!.*\.\.)(?!.*//)(?!.*/\.)(?!.*@\{)(?!.*\.lock(?:/|$))(?![0-9a-f]{64}$)"
    r"[A-Za-z0-9](?:[A-Za-z0-9_.\-/]{0,198}[A-Za-z0-9_\-])?$"
)
# A branch, a tag or a commit id (64 hex digits), as a "from" or "target" of an operation.
REF_OR_COMMIT_PATTERN = r"^(?:[0-9a-f]{64}|" + REF_PATTERN[1:-1] + r")$"
# Repositories: 1-100 of A-Z a-z 0-9 _ . -, starting alphanumeric, not ending ".git".
REPO_PATTERN = r"^(?!.*\.git$)[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
# Stems: 1-64 of letters, digits, space _ . + ( ) -, starting alphanumeric, no trailing space.
STEM_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 _.+()\-]{0,62}[A-Za-z0-9_.+()\-])?$"
# Users: 3-39 of A-Z a-z 0-9 _ . -, starting alphanumeric (vcs allows 1-39; sign-up asks for 3).
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{2,38}$"

_REF_RE = re.compile(REF_PATTERN)
_REF_OR_COMMIT_RE = re.compile(REF_OR_COMMIT_PATTERN)
_REPO_RE = re.compile(REPO_PATTERN)


def check_ref(value: str) -> str:
    if not _REF_RE.match(value):
        raise ValueError(
            "not a valid branch or tag name (git rules: no '..', '//', '@{', trailing '/' or '.', "
            "component starting '.' or ending '.lock', nor a commit id)"
        )
    return value


def check_ref_or_commit(value: str) -> str:
    if value and not _REF_OR_COMMIT_RE.match(value):
        raise ValueError("not a branch, tag or commit id")
    return value


def check_repo(value: str) -> str:
    if not _REPO_RE.match(value):
        raise ValueError("not a valid repository name (must not end with '.git')")
    return value


# The loose patterns below are what pydantic checks (its engine has no look-around); the
# AfterValidator adds the rest, and the OpenAPI states the whole rule.
RefName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$",
        json_schema_extra={"pattern": REF_PATTERN},
    ),
    AfterValidator(check_ref),
]
RefOrCommit = Annotated[
    str,
    Field(
        max_length=200,
        pattern=r"^[A-Za-z0-9_.\-/]*$",
        json_schema_extra={"pattern": "^$|" + REF_OR_COMMIT_PATTERN},
    ),
    AfterValidator(check_ref_or_commit),
]
RepoName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        json_schema_extra={"pattern": REPO_PATTERN},
    ),
    AfterValidator(check_repo),
]
StemName = Annotated[str, Field(min_length=1, max_length=64, pattern=STEM_PATTERN)]
Username = Annotated[str, Field(min_length=3, max_length=39, pattern=USERNAME_PATTERN)]
