"""Retrieval quality on a BEIR-format set: read it, index it, run every query, score the modes.

The metrics follow BEIR's (pytrec_eval's) definitions so that figures can be compared with
published ones: nDCG@10 with graded gains (gain = relevance grade, discount log2(rank + 1),
ideal ranking from the judgments), Recall@100 and MRR@10. A judgment of 0 or less is not
relevant. A query counts when it has at least one relevant judgment.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parcours.ai import embed, retrieval, text
from parcours.ai.index import Entry, Store

QRELS_HEADER = ["query-id", "corpus-id", "score"]
EMBED_BATCH = 256
RANK_DEPTH = 100  # Recall@100 needs the first 100 of every mode


class InvalidInput(Exception):
    """A data set that cannot be read; the message is one line, meant for the person."""


# ------------------------------------------------------------------------------ metrics


def ndcg(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain = grade and discount log2(rank + 1); the ideal ranking takes the
    best grades among the judgments, whether the run found them or not."""
    dcg = sum(
        judged.get(doc, 0) / math.log2(rank + 1)
        for rank, doc in enumerate(ranked[:k], start=1)
        if judged.get(doc, 0) > 0
    )
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    best = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / best if best else 0.0


def recall(ranked: Sequence[str], judged: Mapping[str, int], k: int = 100) -> float:
    """Relevant documents among the first k, over every relevant document judged."""
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document within the first k, else 0 (MRR@k per query)."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (as the benchmarks compute theirs)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


# ------------------------------------------------------------------------------ reading


@dataclass
class Document:
    id: str
    title: str
    text: str


@dataclass
class DataSet:
    documents: list[Document]
    queries: dict[str, str]  # only the queries that count (judged relevant at least once)
    qrels: dict[str, dict[str, int]]
    queries_in_file: int = 0
    unjudged_queries: int = 0  # in qrels, but with no relevant judgment
    unknown_documents: int = 0  # judged, but not in the corpus: found never, counted anyway


def _lines(path: Path, what: str):
    """(line number, text) of a UTF-8 file, blank lines left out."""
    if not path.exists():
        raise InvalidInput(f"{what} file not found: {path}")
    if not path.is_file():
        raise InvalidInput(f"{what} is not a file: {path}")
    number = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):  # noqa: B007 - read after the loop
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} near line {number + 1}: not UTF-8 text") from exc


def _records(path: Path, what: str, fields: tuple[str, ...]):
    for number, line in _lines(path, what):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name} line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InvalidInput(f"{path.name} line {number}: expected a JSON object")
        for name in fields:
            value = record.get(name)
            if value is None:
                raise InvalidInput(f'{path.name} line {number}: no "{name}"')
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidInput(f'{path.name} line {number}: "{name}" is not text')
        title = record.get("title") or ""
        if not isinstance(title, str):
            raise InvalidInput(f'{path.name} line {number}: "title" is not text')
        yield number, str(record["_id"]), title, str(record["text"])


def read_corpus(path: Path) -> list[Document]:
    documents: list[Document] = []
    seen: set[str] = set()
    for number, doc_id, title, body in _records(path, "corpus", ("_id", "text")):
        if doc_id in seen:
            raise InvalidInput(f'{path.name} line {number}: "_id" {doc_id!r} seen before')
        seen.add(doc_id)
        documents.append(Document(doc_id, title, body))
    if not documents:
        raise InvalidInput(f"{path.name}: no documents")
    return documents


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, query_id, _title, body in _records(path, "queries", ("_id", "text")):
        if query_id in queries:
            raise InvalidInput(f'{path.name} line {number}: "_id" {query_id!r} seen before')
        queries[query_id] = body
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> corpus id -> grade, from a TSV file with BEIR's header."""
    qrels: dict[str, dict[str, int]] = {}
    lines = _lines(path, "qrels")
    first = next(lines, None)
    if first is None:
        raise InvalidInput(
            f"{path.name}: empty, expected the header query-id<TAB>corpus-id<TAB>score"
        )
    number, header = first
    columns = [c.strip() for c in header.split("\t")]
    if columns != QRELS_HEADER:
        raise InvalidInput(
            f"{path.name} line {number}: expected the header "
            f"query-id<TAB>corpus-id<TAB>score, found {header[:60]!r}"
        )
    for number, line in lines:
        cells = line.split("\t")
        if len(cells) != 3:
            raise InvalidInput(
                f"{path.name} line {number}: expected 3 tab-separated columns "
                f"(query-id, corpus-id, score), found {len(cells)}"
            )
        query_id, doc_id, score = (c.strip() for c in cells)
        if not query_id or not doc_id:
            raise InvalidInput(f"{path.name} line {number}: empty query-id or corpus-id")
        try:
            grade = int(score)
        except ValueError:
            raise InvalidInput(
                f"{path.name} line {number}: score {score!r} is not a whole number"
            ) from None
        qrels.setdefault(query_id, {})[doc_id] = grade
    return qrels


def load(corpus: Path, queries: Path, qrels: Path) -> DataSet:
    """Read and check a BEIR-format set; raise InvalidInput with a one-line reason."""
    documents = read_corpus(Path(corpus))
    all_queries = read_queries(Path(queries))
    judgments = read_qrels(Path(qrels))
    missing = [q for q in judgments if q not in all_queries]
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise InvalidInput(
            f"{Path(qrels).name}: {len(missing)} query id(s) not in {Path(queries).name}: {shown}"
        )
    counted = {q: j for q, j in judgments.items() if any(g > 0 for g in j.values())}
    if not counted:
        raise InvalidInput(f"{Path(qrels).name}: no query has a relevant document (score > 0)")
    known = {d.id for d in documents}
    unknown = {d for j in counted.values() for d, g in j.items() if g > 0 and d not in known}
    return DataSet(
        documents=documents,
        queries={q: all_queries[q] for q in counted},
        qrels=counted,
        queries_in_file=len(all_queries),
        unjudged_queries=len(judgments) - len(counted),
        unknown_documents=len(unknown),
    )


# ------------------------------------------------------------------------------ running


@dataclass
class ModeResult:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Report:
    documents: int
    queries: int
    data: dict
    index: dict
    modes: list[ModeResult]
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def as_dict(self) -> dict:
        return {
            "documents": self.documents,
            "queries": self.queries,
            "data": self.data,
            "cores": self.cores,
            "index": self.index,
            "modes": {
                m.mode: {
                    "ndcg@10": m.ndcg_at_10,
                    "recall@100": m.recall_at_100,
                    "mrr@10": m.mrr_at_10,
                    "query_p50_ms": m.p50_ms,
                    "query_p95_ms": m.p95_ms,
                    "per_query": m.per_query,
                }
                for m in self.modes
            },
        }


Progress = Callable[[int, int, float], None]  # done, total, seconds so far


def build(
    store: Store, documents: list[Document], dense: bool, progress: Progress | None = None
) -> dict:
    """Index the corpus, one entry per document (chunk and document id: its 1-based
    position); the lexical and the dense index are built and timed one after the other."""
    entries = [
        Entry(
            chunk_id=n,
            doc_id=n,
            acl=0,
            language=text.language(f"{d.title} {d.text}"),
            text=d.text,
            title=d.title,
        )
        for n, d in enumerate(documents, start=1)
    ]
    started = time.perf_counter()
    with store.writing():
        store.add(entries, None)
    timings: dict = {"lexical_s": round(time.perf_counter() - started, 3)}
    if not dense:
        return timings
    # as the service indexes a passage: its text embedded, the title in the lexical index only
    passages = [d.text for d in documents]
    started = time.perf_counter()
    embed.model()  # loaded once per process: not part of the indexing rate
    timings["model_load_s"] = round(time.perf_counter() - started, 3)
    batches = []
    started = time.perf_counter()
    for start in range(0, len(passages), EMBED_BATCH):
        batches.append(embed.passages(passages[start : start + EMBED_BATCH]))
        if progress:
            done = min(start + EMBED_BATCH, len(passages))
            progress(done, len(passages), time.perf_counter() - started)
    embedded = time.perf_counter() - started
    vectors = np.concatenate(batches)
    ids = np.arange(1, len(documents) + 1, dtype=np.int64)
    started = time.perf_counter()
    with store.writing():
        store.build_dense(ids, ids, np.zeros(len(ids), np.int64), vectors)
    built = time.perf_counter() - started
    timings.update(
        dense_s=round(embedded + built, 3),
        embedding_s=round(embedded, 3),
        passages_per_s=round(len(passages) / embedded, 1) if embedded else None,
        faiss_s=round(built, 3),
        faiss_index=type(store.dense._index).__name__,
    )
    return timings


def run_mode(store: Store, data: DataSet, documents: list[Document], mode: str) -> ModeResult:
    """Every counted query in this mode, the first RANK_DEPTH results scored and timed."""
    names = [d.id for d in documents]
    first = next(iter(data.queries.values()))
    retrieval.search(store, first, RANK_DEPTH, mode)  # loads the model, opens the searcher
    per_query: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for query_id, query in data.queries.items():
        # each query pays for its embedding, as a person's would: no query vector kept
        # from the previous mode (or from a repeated query text)
        embed._query.cache_clear()
        started = time.perf_counter()
        hits = retrieval.search(store, query, RANK_DEPTH, mode)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = [names[h.chunk_id - 1] for h in hits]
        judged = data.qrels[query_id]
        per_query[query_id] = {
            "ndcg@10": ndcg(ranked, judged, 10),
            "recall@100": recall(ranked, judged, 100),
            "mrr@10": reciprocal_rank(ranked, judged, 10),
        }

    def mean(name: str) -> float:
        return round(sum(q[name] for q in per_query.values()) / len(per_query), 4)

    return ModeResult(
        mode=mode,
        ndcg_at_10=mean("ndcg@10"),
        recall_at_100=mean("recall@100"),
        mrr_at_10=mean("mrr@10"),
        p50_ms=round(percentile(latencies, 50), 2),
        p95_ms=round(percentile(latencies, 95), 2),
        per_query={q: {k: round(v, 4) for k, v in m.items()} for q, m in per_query.items()},
    )


def parse_modes(value: str) -> list[str]:
    modes = [m.strip() for m in value.split(",") if m.strip()]
    wrong = [m for m in modes if m not in retrieval.MODES]
    if wrong or not modes:
        raise InvalidInput(
            f"--modes: {', '.join(wrong) or 'none given'}; choose among {','.join(retrieval.MODES)}"
        )
    return list(dict.fromkeys(modes))


def check_index_dir(index_dir: Path | None) -> None:
    """A folder to keep the index in must be new or empty: nothing is added to an index."""
    if index_dir is not None:
        index_dir = Path(index_dir)
        if index_dir.exists() and (not index_dir.is_dir() or any(index_dir.iterdir())):
            raise InvalidInput(f"--index-dir {index_dir}: not an empty folder")


def evaluate(
    data: DataSet,
    modes: Sequence[str],
    index_dir: Path | None = None,
    progress: Progress | None = None,
) -> Report:
    """Index the set (in a temporary folder unless index_dir, which must be empty) and
    score every mode."""
    check_index_dir(index_dir)
    with tempfile.TemporaryDirectory(prefix="parcours-eval-") as scratch:
        store = Store(Path(index_dir) if index_dir else Path(scratch))
        timings = build(store, data.documents, bool({"dense", "hybrid"} & set(modes)), progress)
        results = [run_mode(store, data, data.documents, mode) for mode in modes]
    return Report(
        documents=len(data.documents),
        queries=len(data.queries),
        data={
            "queries_in_file": data.queries_in_file,
            "judged_without_relevant": data.unjudged_queries,
            "relevant_not_in_corpus": data.unknown_documents,
        },
        index=timings,
        modes=results,
    )


def table(report: Report) -> str:
    """The report as the command prints it."""
    ix = report.index
    lines = [
        f"documents {report.documents:,}, queries {report.queries:,} "
        f"(of {report.data['queries_in_file']:,} in the file), cores {report.cores}",
        f"index time: lexical {ix['lexical_s']:.2f} s"
        + (
            f", dense {ix['dense_s']:.2f} s (embedding {ix['embedding_s']:.2f} s at "
            f"{ix['passages_per_s']:,.0f} passages/s, faiss {ix['faiss_s']:.2f} s)"
            if "dense_s" in ix
            else ", dense not built"
        ),
    ]
    if report.data["relevant_not_in_corpus"]:
        lines.append(
            f"note: {report.data['relevant_not_in_corpus']} relevant document id(s) are not in "
            "the corpus; they count as never found"
        )
    lines.append("")
    lines.append(
        f"{'mode':<8}{'nDCG@10':>9}{'Recall@100':>12}{'MRR@10':>9}{'p50 ms':>9}{'p95 ms':>9}"
    )
    for m in report.modes:
        lines.append(
            f"{m.mode:<8}{m.ndcg_at_10:>9.4f}{m.recall_at_100:>12.4f}{m.mrr_at_10:>9.4f}"
            f"{m.p50_ms:>9.1f}{m.p95_ms:>9.1f}"
        )
    return "\n".join(lines)
