"""Opaque keyset page tokens (URL-safe base64 of a small JSON object)."""

from __future__ import annotations

import base64
import binascii
import json

from beatflow.common.errors import InvalidArgument


def encode_token(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, object]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidArgument("malformed page token") from None
    if not isinstance(data, dict):
        raise InvalidArgument("malformed page token")
    return data
