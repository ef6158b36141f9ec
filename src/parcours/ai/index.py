"""The search indexes on disk: lexical BM25 (tantivy) and dense vectors (faiss), one writer.

The database holds documents and passages; these files are derived from it and can be
rebuilt (`parcours insight reindex`). Every entry carries its document id and the hash of
its access list, so a search is filtered by what the asker may read before it is ranked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the flat (exact) vector index is scanned whole; past this size an IVF index is built
IVF_FROM = 200_000
# new vectors go to a small exact index beside the base; past this many, both are merged
DELTA_MAX = 50_000
NPROBE = 24
LANGS = {"en": "english", "fr": "french"}


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


def _analyzer(language: str):
    from tantivy import Filter, TextAnalyzerBuilder, Tokenizer

    return (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(40))
        .filter(Filter.lowercase())
        .filter(Filter.stopword(language))
        .filter(Filter.ascii_fold())
        .filter(Filter.stemmer(language))
        .build()
    )


class Lexical:
    """BM25 over passages with tantivy: the passage in its language's field (stemmed and
    stop-worded for that language), the document title in a title field of each language."""

    FIELDS = ("en", "fr", "title_en", "title_fr")

    def __init__(self, path: Path):
        import tantivy

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        sb = tantivy.SchemaBuilder()
        sb.add_unsigned_field("chunk", stored=True, indexed=True, fast=True)
        sb.add_unsigned_field("doc", indexed=True, fast=True)
        sb.add_unsigned_field("acl", indexed=True, fast=True)
        for lang in LANGS:
            sb.add_text_field(lang, tokenizer_name=f"p_{lang}")
            sb.add_text_field(f"title_{lang}", tokenizer_name=f"p_{lang}")
        self.schema = sb.build()
        self.index = tantivy.Index(self.schema, path=str(path))
        for lang, name in LANGS.items():
            self.index.register_tokenizer(f"p_{lang}", _analyzer(name))
        self._tantivy = tantivy

    def add(self, entries: Iterable[Entry], writer) -> int:
        n = 0
        for e in entries:
            doc = self._tantivy.Document()
            doc.add_unsigned("chunk", e.chunk_id)
            doc.add_unsigned("doc", e.doc_id)
            doc.add_unsigned("acl", e.acl)
            lang = e.language if e.language in LANGS else "en"
            doc.add_text(lang, e.text)
            if e.title:
                doc.add_text(f"title_{lang}", e.title)
            writer.add_document(doc)
            n += 1
        return n

    def writer(self):
        return self.index.writer(heap_size=200_000_000, num_threads=1)

    def remove(self, doc_ids: Iterable[int], writer) -> None:
        doc_ids = sorted({int(d) for d in doc_ids})
        if doc_ids:  # by query: a term of a plain int would be read as i64, not this u64 field
            writer.delete_documents_by_query(
                self._tantivy.Query.term_set_query(self.schema, "doc", doc_ids)
            )

    def reload(self) -> None:
        self.index.reload()

    def query(self, text: str, scope: Scope):
        """The user's words as a BM25 query over both languages' fields (titles weigh
        double), restricted to the scope; None when no word is left to search for."""
        from parcours.ai.text import words

        # letters and digits only: "d'anticoagulants" is two words for the analyzer, and the
        # query parser must see no syntax (a quote would start a phrase)
        cleaned = " ".join(re.sub(r"[\W_]+", " ", " ".join(words(text))).split())
        if not cleaned:
            return None
        T = self._tantivy
        try:
            q = self.index.parse_query(
                cleaned, list(self.FIELDS), field_boosts={"title_en": 2.0, "title_fr": 2.0}
            )
        except ValueError:
            return None
        clauses = [(T.Occur.Must, q)]
        if scope.acls is not None:
            clauses.append(
                (T.Occur.Must, T.Query.term_set_query(self.schema, "acl", sorted(scope.acls)))
            )
        if scope.docs is not None:
            clauses.append(
                (T.Occur.Must, T.Query.term_set_query(self.schema, "doc", sorted(scope.docs)))
            )
        return T.Query.boolean_query(clauses) if len(clauses) > 1 else q

    def search(
        self, text: str, k: int, scope: Scope = EVERYTHING, connection=None
    ) -> list[tuple[int, float]]:
        if scope.acls is not None and not scope.acls or scope.docs is not None and not scope.docs:
            return []
        q = self.query(text, scope)
        if q is None:
            return []
        searcher = self.index.searcher()
        result = searcher.search(q, k)
        return [(searcher.doc(addr)["chunk"][0], score) for score, addr in result.hits]

    def count(self) -> int:
        return self.index.searcher().num_docs


class _NoWriter:
    """The writer of an index that the database keeps itself (PostgreSQL full-text)."""

    def commit(self):
        pass

    def rollback(self):
        pass

    def wait_merging_threads(self):
        pass

    def delete_all_documents(self):
        pass


# the passage's language picks the text search configuration; the same expression as the
# GIN index of migration 0010, so that PostgreSQL uses it
PG_VECTOR = (
    "to_tsvector(CASE WHEN c.language = 'fr' THEN 'french'::regconfig"
    " ELSE 'english'::regconfig END, c.text)"
)


class PostgresLexical:
    """Full-text search in PostgreSQL itself, for a cluster of app nodes sharing one database
    instead of one machine's files: the passages table is the index (GIN, migration 0010).
    Ranked by ts_rank_cd (cover density), not BM25; the question is read in both languages."""

    def __init__(self, engine):
        self.engine = engine

    def writer(self):
        return _NoWriter()

    def add(self, entries, writer) -> int:
        return 0  # the passages are in the database already

    def remove(self, doc_ids, writer) -> None:
        pass

    def reload(self) -> None:
        pass

    def search(
        self, text: str, k: int, scope: Scope = EVERYTHING, connection=None
    ) -> list[tuple[int, float]]:
        from sqlalchemy import text as sql

        from parcours.ai.text import words

        if scope.acls is not None and not scope.acls or scope.docs is not None and not scope.docs:
            return []
        cleaned = " ".join(words(text))
        if not cleaned:
            return []
        wheres, params = [], {"q": cleaned, "k": k}
        if scope.acls is not None:
            wheres.append("d.acl_hash = ANY(:acls)")
            params["acls"] = sorted(scope.acls)
        if scope.docs is not None:
            wheres.append("d.id = ANY(:docs)")
            params["docs"] = sorted(scope.docs)
        # any of the words (OR), as BM25 does, in both languages' configurations
        # (only letters and digits: websearch syntax reads "-" as NOT and quotes as phrases)
        params["q"] = " or ".join(re.sub(r"[\W_]+", " ", cleaned).split())
        query = (
            "SELECT c.id, ts_rank_cd(" + PG_VECTOR + ", q) AS score"
            " FROM insight_chunks c JOIN insight_documents d ON d.id = c.document_id,"
            " (SELECT websearch_to_tsquery('french', :q)"
            " || websearch_to_tsquery('english', :q) AS q) qq"
            f" WHERE {PG_VECTOR} @@ q"
            + "".join(f" AND {w}" for w in wheres)
            + " ORDER BY score DESC, c.id LIMIT :k"
        )
        if connection is not None:
            return [(int(i), float(s)) for i, s in connection.execute(sql(query), params)]
        with self.engine.connect() as conn:
            return [(int(i), float(s)) for i, s in conn.execute(sql(query), params)]

    def count(self) -> int:
        from sqlalchemy import text as sql

        with self.engine.connect() as conn:
            return int(conn.execute(sql("SELECT count(*) FROM insight_chunks")).scalar())


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
        base, delta = self.base.count(), self.delta.count()
        if (
            delta >= DELTA_MAX
            or len(self.gone) > max(1000, base // 10)
            or (isinstance(self.base._index, _flat_type()) and base + delta >= IVF_FROM)
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


def _flat_type():
    import faiss

    return faiss.IndexIDMap2


class Store:
    """The two indexes in one folder, with a manifest whose generation tells readers
    in other processes to reload. Writes take an exclusive lock on the folder."""

    def __init__(self, path: Path, lexical: str = "tantivy"):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if lexical == "postgres":
            from parcours.core.db import get_engine

            self.lexical = PostgresLexical(get_engine())
        elif lexical == "opensearch":
            from parcours.ai.opensearch import OpenSearchLexical
            from parcours.core.settings import get_settings

            settings = get_settings()
            auth = (
                (settings.opensearch_user, settings.opensearch_password)
                if settings.opensearch_user
                else None
            )
            self.lexical = OpenSearchLexical(
                settings.opensearch_url, settings.opensearch_index, auth=auth
            )
        else:
            self.lexical = Lexical(self.path / "lexical")
        self.dense = Dense(self.path / "dense")
        self.lexical_kind = lexical
        self.generation = self._read_generation()
        self._guard = threading.Lock()
        self._writer = None
        self._wdense: Dense | None = None

    def _read_generation(self) -> int:
        try:
            return json.loads((self.path / "manifest.json").read_text())["generation"]
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def refresh(self) -> None:
        """Pick up what another process wrote since this one last looked."""
        generation = self._read_generation()
        if generation != self.generation:
            with self._guard:
                if generation != self.generation:
                    self.lexical.reload()
                    self.dense.load()
                    self.generation = generation

    @contextmanager
    def writing(self) -> Iterator[Store]:
        """Exclusive change of both indexes, published with a new generation at the end.
        The vectors are changed on a copy read from disk: searches in this process go on
        reading the published ones until the new generation is in place."""
        lock = open(self.path / ".lock", "w")  # noqa: SIM115 - held for the block
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._read_generation() == self.generation:
                self._wdense = self.dense.copy()  # what is published is what is on disk
            else:
                self._wdense = Dense(self.dense.path)  # as another process left it
            self._writer = self.lexical.writer()
            yield self
            self._writer.commit()
            self._writer.wait_merging_threads()
            self._wdense.save()
            generation = self._read_generation() + 1
            tmp = self.path / "manifest.tmp"
            tmp.write_text(
                json.dumps(
                    {
                        "generation": generation,
                        "passages": self._wdense.count(),
                        "dense": type(self._wdense._index).__name__
                        if self._wdense._index is not None
                        else None,
                    }
                )
            )
            os.replace(tmp, self.path / "manifest.json")
            with self._guard:
                self.lexical.reload()
                self.dense = self._wdense
                self.generation = generation
        except BaseException:
            writer = getattr(self, "_writer", None)
            if writer is not None:
                writer.rollback()
            raise
        finally:
            self._writer = None
            self._wdense = None
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def add(self, entries: list[Entry], vectors: np.ndarray | None) -> None:
        """Inside writing(): index these passages (vectors in the same order)."""
        self.lexical.add(entries, self._writer)
        if vectors is not None and entries:
            self._wdense.add(
                np.array([e.chunk_id for e in entries], np.int64),
                np.array([e.doc_id for e in entries], np.int64),
                np.array([e.acl for e in entries], np.int64),
                vectors,
            )

    def build_dense(self, ids, docs, acls, vectors) -> None:
        """Inside writing(): replace every vector (IVF when there are many)."""
        self._wdense.build(ids, docs, acls, vectors)

    def remove(self, doc_ids: Iterable[int]) -> None:
        """Inside writing(): drop every passage of these documents from both indexes."""
        doc_ids = list(doc_ids)
        self.lexical.remove(doc_ids, self._writer)
        self._wdense.remove(doc_ids)

    def clear(self) -> None:
        """Inside writing(): drop everything."""
        self._writer.delete_all_documents()
        self._wdense.base = _Part(self._wdense.path, "vectors")
        self._wdense.delta = _Part(self._wdense.path, "delta")
        self._wdense.gone = np.zeros(0, np.int64)
        self._wdense._base_dirty = True


_STORES: dict[Path, Store] = {}
_STORES_LOCK = threading.Lock()


def store(path: Path) -> Store:
    """The process's store for this folder, refreshed to the newest generation."""
    from parcours.core.settings import get_settings

    path = Path(path).resolve()
    lexical = get_settings().insight_lexical
    with _STORES_LOCK:
        s = _STORES.get(path)
        if s is None or not path.exists() or s.lexical_kind != lexical:
            s = _STORES[path] = Store(path, lexical)
    s.refresh()
    return s


def forget(path: Path | None = None) -> None:
    """Close stores (tests give each test its own folder)."""
    with _STORES_LOCK:
        if path is None:
            _STORES.clear()
        else:
            _STORES.pop(Path(path).resolve(), None)
