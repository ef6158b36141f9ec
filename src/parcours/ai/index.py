"""The search indexes on disk: lexical BM25 (tantivy) and dense vectors (faiss), one writer.

The database holds documents and passages; these files are derived from it and can be
rebuilt (`parcours insight reindex`). Every entry carries its document id and the hash of
its access list, so a search is filtered by what the asker may read before it is ranked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from parcours.ai.scope import EVERYTHING, Entry, Scope, acl_hash  # noqa: F401 (re-exported)
from parcours.ai.vectors import DELTA_MAX, IVF_FROM, NPROBE, Dense, _Part  # noqa: F401

LANGS = {"en": "english", "fr": "french"}


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
