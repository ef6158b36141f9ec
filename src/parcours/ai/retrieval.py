"""Ranking: BM25, dense and their fusion, over a Store, within a Scope."""

from __future__ import annotations

from dataclasses import dataclass, field

from parcours.ai import embed
from parcours.ai.index import EVERYTHING, Scope, Store

MODES = ("bm25", "dense", "hybrid")
# reciprocal rank fusion: k=60 is the constant of Cormack et al. (2009); each list is cut
# at DEPTH so that a passage found by one retriever only still counts
RRF_K = 60
DEPTH = 100


@dataclass
class Hit:
    chunk_id: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def search(
    store: Store,
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    scope: Scope = EVERYTHING,
    connection=None,
) -> list[Hit]:
    """connection: the database connection a PostgreSQL lexical index reads through (the
    caller's transaction); the tantivy index ignores it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if mode == "bm25":
        return [
            Hit(c, s, {"bm25": r})
            for r, (c, s) in enumerate(store.lexical.search(query, k, scope, connection), 1)
        ]
    if mode == "dense":
        vector = embed.query(query)
        return [
            Hit(c, s, {"dense": r})
            for r, (c, s) in enumerate(store.dense.search(vector, k, scope), 1)
        ]
    depth = max(DEPTH, k)
    lexical = store.lexical.search(query, depth, scope, connection)
    dense = store.dense.search(embed.query(query), depth, scope)
    return fuse({"bm25": lexical, "dense": dense}, k)


def fuse(lists: dict[str, list[tuple[int, float]]], k: int) -> list[Hit]:
    hits: dict[int, Hit] = {}
    for name, ranked in lists.items():
        for rank, (chunk_id, _score) in enumerate(ranked, start=1):
            hit = hits.setdefault(chunk_id, Hit(chunk_id, 0.0))
            hit.score += 1.0 / (RRF_K + rank)
            hit.ranks[name] = rank
    return sorted(hits.values(), key=lambda h: -h.score)[:k]
