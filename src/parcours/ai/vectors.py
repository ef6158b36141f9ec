"""Passage vectors in faiss: a base index, a small delta beside it, removals marked."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from parcours.ai.scope import EVERYTHING, Scope

# the flat (exact) vector index is scanned whole; past this size an IVF index is built
IVF_FROM = 200_000
# new vectors go to a small exact index beside the base; past this many, both are merged
DELTA_MAX = 50_000
NPROBE = 24


class _Part:
    """One faiss index with the ids, document ids and access hashes of its vectors."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name
        self._index = None
        self.ids = np.zeros(0, np.int64)
        self.docs = np.zeros(0, np.int64)
        self.acls = np.zeros(0, np.int64)
        self.stamp: tuple | None = None

    @property
    def file(self) -> Path:
        return self.path / f"{self.name}.faiss"

    @property
    def meta(self) -> Path:
        return self.path / f"{self.name}.npz"

    def load(self) -> bool:
        """Read the files when they changed since last read; whether they had."""
        import faiss

        try:
            st = self.file.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        if stamp is None or not self.meta.exists():
            self.clear()
        else:
            self._index = faiss.read_index(str(self.file))
            meta = np.load(self.meta)
            self.ids, self.docs, self.acls = meta["ids"], meta["docs"], meta["acls"]
        return True

    def clear(self) -> None:
        self._index = None
        self.ids = self.docs = self.acls = np.zeros(0, np.int64)

    def copy(self) -> _Part:
        import faiss

        other = _Part(self.path, self.name)
        other._index = None if self._index is None else faiss.clone_index(self._index)
        other.ids, other.docs, other.acls = self.ids.copy(), self.docs.copy(), self.acls.copy()
        other.stamp = self.stamp
        return other

    def count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def add(self, ids, docs, acls, vectors: np.ndarray, *, sample: bool = False) -> None:
        import faiss

        if not len(ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._index is None:
            dim, n = vectors.shape[1], len(vectors)
            if sample and n >= IVF_FROM:
                nlist = int(4 * np.sqrt(n))
                quantizer = faiss.IndexFlatIP(dim)
                index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
                rng = np.random.default_rng(7)
                index.train(vectors[rng.choice(n, size=min(n, 60 * nlist), replace=False)])
                index.nprobe = NPROBE
                # vectors found again by id, when the index is rebuilt with changes
                index.set_direct_map_type(faiss.DirectMap.Hashtable)
                self._index = index
            else:
                self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._index.add_with_ids(vectors, np.asarray(ids, np.int64))
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self.docs = np.concatenate([self.docs, np.asarray(docs, np.int64)])
        self.acls = np.concatenate([self.acls, np.asarray(acls, np.int64)])

    def remove_docs(self, doc_ids: np.ndarray) -> None:
        import faiss

        gone = np.isin(self.docs, doc_ids)
        if not gone.any() or self._index is None:
            return
        self._index.remove_ids(faiss.IDSelectorBatch(self.ids[gone]))
        keep = ~gone
        self.ids, self.docs, self.acls = self.ids[keep], self.docs[keep], self.acls[keep]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """These ids' vectors, read back from the index (no embedding again)."""
        import faiss

        if isinstance(self._index, faiss.IndexIDMap2):
            flat = faiss.downcast_index(self._index.index)
            every = faiss.vector_to_array(flat.codes).view(np.float32).reshape(-1, flat.d)
            order = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            at = {int(i): n for n, i in enumerate(order)}
            return every[[at[int(i)] for i in ids]]
        if self._index.direct_map.type == 0:  # an index from before the direct map
            self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return self._index.reconstruct_batch(np.asarray(ids, np.int64))

    def save(self) -> None:
        import faiss

        if self._index is None:
            self.file.unlink(missing_ok=True)
            self.meta.unlink(missing_ok=True)
            self.stamp = None
            return
        tmp = self.path / f"{self.name}.tmp.faiss"
        faiss.write_index(self._index, str(tmp))
        np.savez(self.path / f"{self.name}.tmp.npz", ids=self.ids, docs=self.docs, acls=self.acls)
        os.replace(self.path / f"{self.name}.tmp.npz", self.meta)
        os.replace(tmp, self.file)
        st = self.file.stat()
        self.stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def selector(self, scope: Scope, gone: np.ndarray):
        import faiss

        mask = np.ones(len(self.ids), bool)
        if scope.acls is not None:
            mask &= np.isin(self.acls, np.fromiter(scope.acls, np.int64))
        if scope.docs is not None:
            mask &= np.isin(self.docs, np.fromiter(scope.docs, np.int64))
        if len(gone):
            mask &= ~np.isin(self.ids, gone)
        if mask.all():
            return None
        top = int(self.ids.max()) + 1
        bits = np.zeros(top, bool)
        bits[self.ids[mask]] = True
        packed = np.packbits(bits, bitorder="little")
        return (faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)), packed)

    def search(self, q: np.ndarray, k: int, selected):
        import faiss

        if self._index is None or not self._index.ntotal:
            return []
        ivf = isinstance(self._index, faiss.IndexIVF)
        if selected is None:
            params = faiss.SearchParametersIVF(nprobe=NPROBE) if ivf else None
        elif ivf:
            params = faiss.SearchParametersIVF(sel=selected[0], nprobe=NPROBE)
        else:
            params = faiss.SearchParameters(sel=selected[0])
        scores, ids = self._index.search(q, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


class Dense:
    """Passage vectors in faiss, inner product on normalised vectors (cosine).

    A base index (exact while small, IVF past IVF_FROM) that a write leaves alone, a small
    exact delta index that takes new passages, and the base ids of removed passages. A write
    costs its own vectors; the base is rebuilt from its own vectors and the delta (no
    embedding again) when the delta passes DELTA_MAX or a tenth of the base is removed.
    ids, document ids and access hashes live beside each index, to filter a search by scope
    with a bitmap selector."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.base = _Part(path, "vectors")
        self.delta = _Part(path, "delta")
        self.gone = np.zeros(0, np.int64)
        self._base_dirty = False
        self._selectors: dict[tuple, object] = {}
        self.load()

    @property
    def _index(self):
        """The base index (what the figures and the manifest describe)."""
        return self.base._index

    def load(self) -> None:
        self._selectors = {}
        self.base.load()
        self.delta.load()
        try:
            self.gone = np.load(self.path / "gone.npy")
        except FileNotFoundError:
            self.gone = np.zeros(0, np.int64)

    def copy(self) -> Dense:
        """Another Dense on the same folder to change apart: the base is shared (a change
        never touches it in place), the delta copied."""
        other = Dense.__new__(Dense)
        other.path = self.path
        other.base = self.base
        other.delta = self.delta.copy()
        other.gone = self.gone.copy()
        other._base_dirty = False
        other._selectors = {}
        return other

    def add(self, ids: np.ndarray, docs: np.ndarray, acls: np.ndarray, vectors: np.ndarray):
        self._selectors = {}
        if self.base._index is None and not self._base_dirty:
            self.base = _Part(self.path, "vectors")
            self.base.add(ids, docs, acls, vectors)
            self._base_dirty = True
            return
        self.delta.add(ids, docs, acls, vectors)

    def build(self, ids, docs, acls, vectors: np.ndarray) -> None:
        """Replace everything with these vectors (IVF when there are many)."""
        self._selectors = {}
        self.base = _Part(self.path, "vectors")
        self.base.add(ids, docs, acls, vectors, sample=True)
        self.delta = _Part(self.path, "delta")
        self.gone = np.zeros(0, np.int64)
        self._base_dirty = True

    def remove(self, doc_ids: Iterable[int]) -> None:
        self._selectors = {}
        doc_ids = np.fromiter(doc_ids, np.int64)
        self.delta.remove_docs(doc_ids)
        if self._base_dirty:
            self.base.remove_docs(doc_ids)  # written anyway: drop them for good
            return
        hit = self.base.ids[np.isin(self.base.docs, doc_ids)]
        self.gone = np.union1d(self.gone, hit)

    def _compact(self) -> None:
        """The base rebuilt with the delta in and the removed out, from their vectors."""
        keep = ~np.isin(self.base.ids, self.gone)
        ids = np.concatenate([self.base.ids[keep], self.delta.ids])
        docs = np.concatenate([self.base.docs[keep], self.delta.docs])
        acls = np.concatenate([self.base.acls[keep], self.delta.acls])
        parts = []
        if keep.any():
            parts.append(self.base.vectors(self.base.ids[keep]))
        if len(self.delta.ids):
            parts.append(self.delta.vectors(self.delta.ids))
        if not parts:
            self.base, self.delta = _Part(self.path, "vectors"), _Part(self.path, "delta")
            self.gone, self._base_dirty = np.zeros(0, np.int64), True
            return
        self.build(ids, docs, acls, np.concatenate(parts))

    def save(self) -> None:
        import faiss

        base, delta = self.base.count(), self.delta.count()
        if (
            delta >= DELTA_MAX
            or len(self.gone) > max(1000, base // 10)
            or (not isinstance(self.base._index, faiss.IndexIVF) and base + delta >= IVF_FROM)
        ):
            self._compact()
        if self._base_dirty:
            self.base.save()
            self._base_dirty = False
        self.delta.save()
        tmp = self.path / "gone.tmp.npy"
        np.save(tmp, self.gone)
        os.replace(tmp, self.path / "gone.npy")

    def count(self) -> int:
        gone = int(np.isin(self.base.ids, self.gone).sum()) if len(self.gone) else 0
        return self.base.count() - gone + self.delta.count()

    def _selector(self, scope: Scope):
        key = scope.key()
        if key not in self._selectors:
            if len(self._selectors) > 64:
                self._selectors.clear()
            self._selectors[key] = (
                self.base.selector(scope, self.gone),
                self.delta.selector(scope, np.zeros(0, np.int64)),
            )
        return self._selectors[key][0]

    def search(self, vector: np.ndarray, k: int, scope: Scope = EVERYTHING):
        if scope.acls is not None and not scope.acls or scope.docs is not None and not scope.docs:
            return []
        if not self.count():
            return []
        q = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        self._selector(scope)
        base_sel, delta_sel = self._selectors[scope.key()]
        hits = self.base.search(q, k, base_sel) + self.delta.search(q, k, delta_sel)
        return sorted(hits, key=lambda h: -h[1])[:k]
