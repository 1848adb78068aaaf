"""One exception for every expected failure, carrying the process exit code.

Exit codes (documented in the README; scripts may rely on them):

====  ==========================================================================
0     success
1     the server refused the request, or a task failed (its message is printed)
2     wrong usage (unknown option, missing argument, not in a working folder)
3     not signed in, or the token was refused (401)
4     no such repository, ref, commit, task or audio (404)
5     conflict: the branch moved on the server, a merge has conflicts, or local
      changes would be overwritten
6     the server cannot be reached (wrong address, down, or 503)
7     a local file is unreadable, not audio, or a download failed its hash check
130   interrupted (Ctrl-C); a running task was cancelled on the server
====  ==========================================================================
"""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
AUTH = 3
NOT_FOUND = 4
CONFLICT = 5
UNREACHABLE = 6
LOCAL_FILE = 7
INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as one line on stderr, exiting with ``code``."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def for_status(status: int) -> int:
    """The exit code for an HTTP error status."""
    if status == 401:
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status in (502, 503, 504):
        return UNREACHABLE
    return FAILED
