"""The vector index: new passages in a small delta, removals marked, the base rebuilt from its
own vectors (IVF past its threshold) without losing or resurrecting a passage, and another
process reading what was published."""

from __future__ import annotations

import numpy as np

from parcours.ai import index as ix
from parcours.ai import vectors as vectors_module


def vectors(n: int, seed: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entries(a: int, b: int) -> list[ix.Entry]:
    return [ix.Entry(i, i // 10, 7 if i % 2 else 9, "en", f"word{i} common") for i in range(a, b)]


def test_delta_removals_and_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors_module, "IVF_FROM", 3000)
    monkeypatch.setattr(vectors_module, "DELTA_MAX", 1500)
    store = ix.Store(tmp_path / "idx")
    v = vectors(4000)

    def top(vector, scope=ix.EVERYTHING, k=1):
        return [c for c, _ in store.dense.search(vector, k, scope)]

    with store.writing():
        store.add(entries(1, 1001), v[1:1001])
    with store.writing():  # the second write lands in the delta: the base file is untouched
        before = (tmp_path / "idx" / "dense" / "vectors.faiss").stat().st_mtime_ns
        store.add(entries(1001, 2001), v[1001:2001])
        store.remove([5])  # passages 50-59, in the base: marked, not rewritten
    assert (tmp_path / "idx" / "dense" / "vectors.faiss").stat().st_mtime_ns == before
    assert store.dense.delta.count() == 1000 and store.dense.count() == 1990
    assert top(v[1500]) == [1500] and 51 not in top(v[51], k=5)
    assert 1234 not in top(v[1234], ix.Scope(acls=frozenset({7})), k=5)  # 1234 has acl 9

    with store.writing():  # past the delta's size and IVF's threshold: one IVF base
        store.add(entries(2001, 3600), v[2001:3600])
    assert type(store.dense._index).__name__ == "IndexIVFFlat"
    assert store.dense.delta.count() == 0 and store.dense.count() == 3589
    assert top(v[3500]) == [3500] and top(v[700]) == [700]
    assert 51 not in top(v[51], k=5)

    with store.writing():
        store.remove([70])
        store.add(entries(3600, 3700), v[3600:3700])
    other = ix.Store(tmp_path / "idx")  # another process
    assert other.dense.count() == store.dense.count() == 3679
    assert [c for c, _ in other.dense.search(v[3650], 1)] == [3650]
    assert all(c // 10 != 70 for c, _ in other.dense.search(v[705], 5))
