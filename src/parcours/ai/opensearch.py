"""BM25 in an OpenSearch cluster, behind the same interface as the tantivy index: for labs
whose documents outgrow one machine. Speaks OpenSearch's REST API with httpx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import httpx

from parcours.ai.index import EVERYTHING, LANGS, Scope

# one field per language with OpenSearch's own language analyzers (stemming, stop words,
# elision for French), the title in a field of its own weighted twice: as in tantivy
MAPPING = {
    "settings": {"index": {"number_of_shards": 1}},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "chunk": {"type": "long"},
            "doc": {"type": "long"},
            "acl": {"type": "long"},
            **{lang: {"type": "text", "analyzer": name} for lang, name in LANGS.items()},
            **{f"title_{lang}": {"type": "text", "analyzer": name} for lang, name in LANGS.items()},
        },
    },
}
FIELDS = ["en", "fr", "title_en^2", "title_fr^2"]


class OpenSearchError(Exception):
    """The cluster refused or could not be reached; the message says what it answered."""


class _Bulk:
    """What one writing() adds and removes, sent at commit: deletions first, then the new
    passages, refreshed before the generation is published."""

    def __init__(self, target: OpenSearchLexical):
        self.target = target
        self.lines: list[str] = []
        self.removed: set[int] = set()
        self.clear = False

    def commit(self) -> None:
        self.target._apply(self)

    def rollback(self) -> None:
        self.lines, self.removed, self.clear = [], set(), False

    def wait_merging_threads(self) -> None:
        pass

    def delete_all_documents(self) -> None:
        self.clear = True
        self.lines, self.removed = [], set()


class OpenSearchLexical:
    def __init__(self, url: str, index: str, *, auth=None, client: httpx.Client | None = None):
        self.url = url.rstrip("/")
        self.index = index
        self.client = client or httpx.Client(auth=auth, timeout=30.0)
        self._ready = False

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            resp = self.client.request(method, f"{self.url}/{path.lstrip('/')}", **kw)
        except httpx.HTTPError as exc:
            raise OpenSearchError(f"OpenSearch at {self.url} cannot be reached ({exc}).") from exc
        if resp.status_code >= 400:
            raise OpenSearchError(f"OpenSearch answered {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else {}

    def ensure_index(self) -> None:
        """Create the index with its mapping, once (an existing one is kept)."""
        if self._ready:
            return
        resp = self.client.head(f"{self.url}/{self.index}")
        if resp.status_code == 404:
            self._call("PUT", self.index, json=MAPPING)
        elif resp.status_code >= 400:
            raise OpenSearchError(f"OpenSearch answered {resp.status_code} for {self.index}.")
        self._ready = True

    def writer(self) -> _Bulk:
        self.ensure_index()
        return _Bulk(self)

    def add(self, entries: Iterable, writer: _Bulk) -> int:
        n = 0
        for e in entries:
            lang = e.language if e.language in LANGS else "en"
            source = {"chunk": e.chunk_id, "doc": e.doc_id, "acl": e.acl, lang: e.text}
            if e.title:
                source[f"title_{lang}"] = e.title
            writer.lines.append(json.dumps({"index": {"_index": self.index, "_id": e.chunk_id}}))
            writer.lines.append(json.dumps(source, ensure_ascii=False))
            n += 1
        return n

    def remove(self, doc_ids: Iterable[int], writer: _Bulk) -> None:
        writer.removed.update(int(d) for d in doc_ids)

    def _apply(self, bulk: _Bulk) -> None:
        if bulk.clear:
            self._call(
                "POST",
                f"{self.index}/_delete_by_query?refresh=true",
                json={"query": {"match_all": {}}},
            )
        if bulk.removed:
            self._call(
                "POST",
                f"{self.index}/_delete_by_query?refresh=true",
                json={"query": {"terms": {"doc": sorted(bulk.removed)}}},
            )
        if bulk.lines:
            body = "\n".join(bulk.lines) + "\n"
            out = self._call(
                "POST",
                "_bulk?refresh=wait_for",
                content=body.encode(),
                headers={"Content-Type": "application/x-ndjson"},
            )
            if out.get("errors"):
                failed = next(
                    (i for i in out.get("items", []) if i.get("index", {}).get("error")), {}
                )
                raise OpenSearchError(f"OpenSearch refused passages: {failed}")

    def reload(self) -> None:
        pass  # searches read what the last refresh made visible

    def query(self, text: str, k: int, scope: Scope) -> dict | None:
        from parcours.ai.text import words

        cleaned = " ".join(re.sub(r"[\W_]+", " ", " ".join(words(text))).split())
        if not cleaned:
            return None
        filters = []
        if scope.acls is not None:
            filters.append({"terms": {"acl": sorted(scope.acls)}})
        if scope.docs is not None:
            filters.append({"terms": {"doc": sorted(scope.docs)}})
        return {
            "size": k,
            "_source": False,
            "query": {
                "bool": {
                    # any word in any field, scores added up across fields (as tantivy's
                    # query over several default fields does)
                    "must": {
                        "multi_match": {"query": cleaned, "fields": FIELDS, "type": "most_fields"}
                    },
                    "filter": filters,
                }
            },
        }

    def search(
        self, text: str, k: int, scope: Scope = EVERYTHING, connection=None
    ) -> list[tuple[int, float]]:
        if scope.acls is not None and not scope.acls or scope.docs is not None and not scope.docs:
            return []
        body = self.query(text, k, scope)
        if body is None:
            return []
        self.ensure_index()
        out = self._call("POST", f"{self.index}/_search", json=body)
        return [(int(h["_id"]), float(h["_score"])) for h in out["hits"]["hits"]]

    def count(self) -> int:
        self.ensure_index()
        return int(self._call("GET", f"{self.index}/_count")["count"])
