"""Content addressing of commits: the id is the SHA-256 of a canonical JSON form.

Canonical: keys sorted, no whitespace, UTF-8, stems sorted by name, parents in
order (the first parent is the mainline). The repository is not part of the
content, so a commit shared by a fork family is one row with one id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from beatflow.vcs.model import Metadata, Stem


def canonical_commit(
    *,
    parents: Iterable[str],
    stems: Iterable[Stem],
    mixdown_blob: str,
    metadata: Metadata,
    author_id: str,
    message: str,
    timestamp: float,
) -> bytes:
    doc = {
        "author": author_id,
        "message": message,
        "metadata": metadata.canonical(),
        "mixdown": mixdown_blob,
        "parents": list(parents),
        "stems": [s.canonical() for s in sorted(stems, key=lambda s: s.name)],
        "timestamp": timestamp,
        "v": 1,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def commit_id(
    *,
    parents: Iterable[str],
    stems: Iterable[Stem],
    mixdown_blob: str,
    metadata: Metadata,
    author_id: str,
    message: str,
    timestamp: float,
) -> str:
    """Same content (parents, stems, mixdown, metadata, author, message, timestamp) => same id."""
    body = canonical_commit(
        parents=parents,
        stems=stems,
        mixdown_blob=mixdown_blob,
        metadata=metadata,
        author_id=author_id,
        message=message,
        timestamp=timestamp,
    )
    return hashlib.sha256(body).hexdigest()
