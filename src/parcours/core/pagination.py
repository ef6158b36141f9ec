"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import json

from parcours.core.errors import Invalid


def encode(*values) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, size: int) -> list | None:
    if not cursor:
        return None
    if len(cursor) > 400:
        raise Invalid("The cursor is not one this server gave.", field="cursor")
    try:
        pad = "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(cursor + pad))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Invalid("The cursor is not one this server gave.", field="cursor") from exc
    if (
        not isinstance(values, list)
        or len(values) != size
        or not isinstance(values[0], str)
        or not isinstance(values[-1], int)
        or isinstance(values[-1], bool)
        or not 0 <= values[-1] < 2**63
    ):
        raise Invalid("The cursor is not one this server gave.", field="cursor")
    return values
