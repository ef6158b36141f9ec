"""A local stand-in for the part of OpenSearch's REST API the adapter uses: index creation,
_bulk, _delete_by_query, _search with a bool query (terms filters), _count. It records every
request. Its ranking is a crude word count, not OpenSearch's BM25: the tests check what the
adapter sends and how it reads the answers, not the ranking."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass
class Cluster:
    mappings: dict[str, dict] = field(default_factory=dict)
    docs: dict[str, dict[str, dict]] = field(default_factory=dict)
    requests: list[tuple[str, str, object]] = field(default_factory=list)
    down: bool = False

    def bodies(self, method: str, part: str) -> list:
        return [b for m, p, b in self.requests if m == method and part in p]


def _stem(word: str) -> str:
    return word.lower()[:5]


def _matches(query: dict, source: dict) -> bool:
    if "match_all" in query:
        return True
    ((name, values),) = query["terms"].items()
    return source.get(name) in values


def opensearch_app(cluster: Cluster) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode()
        cluster.requests.append((request.method, request.url.path, parsed))
        if cluster.down:
            return JSONResponse({"error": "cluster_block_exception"}, status_code=503)
        return await call_next(request)

    @app.head("/{index}")
    def exists(index: str):
        return Response(status_code=200 if index in cluster.mappings else 404)

    @app.put("/{index}")
    async def create(index: str, request: Request):
        if index in cluster.mappings:
            return JSONResponse({"error": "resource_already_exists_exception"}, status_code=400)
        cluster.mappings[index] = await request.json()
        cluster.docs[index] = {}
        return {"acknowledged": True, "index": index}

    @app.post("/_bulk")
    async def bulk(request: Request):
        if request.headers.get("content-type") != "application/x-ndjson":
            return JSONResponse({"error": "wrong content type"}, status_code=406)
        lines = (await request.body()).decode().splitlines()
        items = []
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            meta = json.loads(action)["index"]
            cluster.docs[meta["_index"]][str(meta["_id"])] = json.loads(source)
            items.append({"index": {"_id": meta["_id"], "status": 201}})
        return {"errors": False, "items": items}

    @app.post("/{index}/_delete_by_query")
    async def delete(index: str, request: Request):
        query = (await request.json())["query"]
        gone = [i for i, s in cluster.docs[index].items() if _matches(query, s)]
        for i in gone:
            del cluster.docs[index][i]
        return {"deleted": len(gone)}

    @app.post("/{index}/_search")
    async def search(index: str, request: Request):
        body = await request.json()
        boolean = body["query"]["bool"]
        match = boolean["must"]["multi_match"]
        words = {_stem(w) for w in re.findall(r"\w+", match["query"])}
        hits = []
        for i, source in cluster.docs[index].items():
            if not all(_matches(f, source) for f in boolean["filter"]):
                continue
            score = 0.0
            for spec in match["fields"]:
                name, _, boost = spec.partition("^")
                text = {_stem(w) for w in re.findall(r"\w+", source.get(name, ""))}
                score += len(words & text) * float(boost or 1)
            if score:
                hits.append({"_index": index, "_id": i, "_score": score})
        hits.sort(key=lambda h: -h["_score"])
        return {"hits": {"total": {"value": len(hits)}, "hits": hits[: body["size"]]}}

    @app.get("/{index}/_count")
    def count(index: str):
        return {"count": len(cluster.docs.get(index, {}))}

    return app
