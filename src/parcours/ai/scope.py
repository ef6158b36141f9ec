"""What the indexes hold of a passage, and what a search may return (access and documents)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def acl_hash(acl_key: str) -> int:
    """A stable 63-bit number for an access list, stored with every indexed passage."""
    return int.from_bytes(hashlib.blake2b(acl_key.encode(), digest_size=8).digest(), "big") >> 1


@dataclass
class Entry:
    """One passage as the indexes see it."""

    chunk_id: int
    doc_id: int
    acl: int
    language: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class Scope:
    """What a search may return: passages whose access list hash is in acls (None: any),
    and, when filtering by metadata, whose document is in docs (None: any)."""

    acls: frozenset[int] | None = None
    docs: frozenset[int] | None = None

    def key(self) -> tuple:
        return (
            None if self.acls is None else tuple(sorted(self.acls)),
            None if self.docs is None else tuple(sorted(self.docs)),
        )


EVERYTHING = Scope()
