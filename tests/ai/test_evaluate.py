"""The retrieval evaluation: metrics by hand, BEIR files read or refused, the command run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcours.ai import evaluate
from parcours.ai.evaluate import ndcg, percentile, recall, reciprocal_rank
from parcours.cli import app

MINI = Path(__file__).parent / "data" / "beir-mini"
JUDGED = {"d2": 2, "d4": 1, "d9": 1, "d5": 0}  # d9 never retrieved, d5 judged not relevant


# ------------------------------------------------------------------------------ metrics


def test_ndcg_with_graded_gains_and_an_ideal_from_the_judgments():
    # DCG = 2/log2(3) + 1/log2(5) = 1.261860 + 0.430677 = 1.692536
    # ideal: grades 2, 1, 1 -> 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.630930 + 0.5 = 3.130930
    assert ndcg(["d1", "d2", "d3", "d4"], JUDGED) == pytest.approx(0.540586, abs=1e-6)
    assert ndcg(["d2", "d4", "d9"], JUDGED) == pytest.approx(1.0)


def test_ndcg_rewards_the_higher_grade_first():
    # (1/log2(2) + 2/log2(3)) / (2/log2(2) + 1/log2(3)) = 2.261860 / 2.630930
    assert ndcg(["d4", "d2"], {"d2": 2, "d4": 1}) == pytest.approx(0.859719, abs=1e-6)


def test_ndcg_cuts_the_run_and_the_ideal_at_k():
    judged = {f"r{i}": 1 for i in range(12)}
    assert ndcg([f"r{i}" for i in range(10)], judged, 10) == pytest.approx(1.0)
    assert ndcg([f"x{i}" for i in range(10)] + ["d2"], JUDGED, 10) == 0.0
    # a single relevant document at rank 3: 1/log2(4) over an ideal of 1
    assert ndcg(["x", "y", "d"], {"d": 1}, 10) == pytest.approx(0.5)


def test_recall_counts_every_relevant_document_judged():
    assert recall(["d1", "d2", "d3", "d4"], JUDGED) == pytest.approx(2 / 3)
    assert recall([f"x{i}" for i in range(10)] + ["d2"], JUDGED, 100) == pytest.approx(1 / 3)
    assert recall([f"x{i}" for i in range(100)] + ["d2"], JUDGED, 100) == 0.0


def test_reciprocal_rank_of_the_first_relevant_document_within_k():
    assert reciprocal_rank(["d1", "d2", "d4"], JUDGED) == 0.5
    assert reciprocal_rank(["d5", "d1", "d3", "d4"], JUDGED) == 0.25  # d5 is judged 0
    assert reciprocal_rank([f"x{i}" for i in range(10)] + ["d2"], JUDGED, 10) == 0.0


def test_nothing_relevant_or_nothing_found_scores_zero():
    for metric in (ndcg, recall, reciprocal_rank):
        assert metric([], JUDGED) == 0.0
        assert metric(["a", "b"], {"a": 0, "b": -1}) == 0.0


def test_percentile_is_nearest_rank():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(list(range(1, 101)), 95) == 95


# ------------------------------------------------------------------------------ reading


def test_the_mini_set_reads_and_only_judged_queries_count():
    data = evaluate.load(MINI / "corpus.jsonl", MINI / "queries.jsonl", MINI / "qrels.tsv")
    assert len(data.documents) == 80
    assert data.queries_in_file == 27
    assert len(data.queries) == 26  # q27 has no judgment
    assert "q27" not in data.queries
    assert data.qrels["q01"] == {"ac02": 2, "ac01": 1, "ac12": 0}
    assert next(d for d in data.documents if d.id == "it07").title == ""


runner = CliRunner()


def eval_cli(*args: str):
    return runner.invoke(app, ["eval", "retrieval", *args])


def files(tmp_path: Path, corpus: str | None = None, queries=None, qrels=None) -> list[str]:
    paths = {}
    for name, content in (
        ("corpus.jsonl", corpus),
        ("queries.jsonl", queries),
        ("qrels.tsv", qrels),
    ):
        if content is None:
            paths[name] = MINI / name
        else:
            paths[name] = tmp_path / name
            paths[name].write_text(content, encoding="utf-8")
    return [
        "--corpus",
        str(paths["corpus.jsonl"]),
        "--queries",
        str(paths["queries.jsonl"]),
        "--qrels",
        str(paths["qrels.tsv"]),
    ]


def refused(result) -> str:
    """The command stopped with exit code 2 and one line on stderr, no traceback."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: ")
    return message


def test_a_missing_file_is_named(tmp_path):
    args = files(tmp_path)
    args[1] = str(tmp_path / "nowhere.jsonl")
    assert "corpus file not found" in refused(eval_cli(*args))
    assert "nowhere.jsonl" in refused(eval_cli(*args))


def test_malformed_json_is_reported_with_its_line_number(tmp_path):
    good = (MINI / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    broken = "\n".join([*good[:2], '{"_id": "x", "text": "no end"', *good[2:]])
    message = refused(eval_cli(*files(tmp_path, corpus=broken)))
    assert "corpus.jsonl line 3: not valid JSON" in message


def test_a_line_without_id_or_text_is_refused(tmp_path):
    queries = '{"_id": "q01", "text": "warfarin"}\n{"text": "no id"}\n'
    assert 'queries.jsonl line 2: no "_id"' in refused(eval_cli(*files(tmp_path, queries=queries)))
    corpus = '{"_id": "a", "title": "t"}\n'
    assert 'corpus.jsonl line 1: no "text"' in refused(eval_cli(*files(tmp_path, corpus=corpus)))


def test_qrels_without_their_header_are_refused(tmp_path):
    message = refused(eval_cli(*files(tmp_path, qrels="q01\tac02\t2\n")))
    assert "qrels.tsv line 1: expected the header query-id<TAB>corpus-id<TAB>score" in message


def test_qrels_with_wrong_columns_are_refused(tmp_path):
    header = "query-id\tcorpus-id\tscore\n"
    message = refused(eval_cli(*files(tmp_path, qrels=header + "q01\tac02\t2\nq02 ac04 2\n")))
    assert "qrels.tsv line 3: expected 3 tab-separated columns" in message
    message = refused(eval_cli(*files(tmp_path, qrels=header + "q01\tac02\thigh\n")))
    assert "qrels.tsv line 2: score 'high' is not a whole number" in message
    message = refused(eval_cli(*files(tmp_path, qrels="query\tdoc\trel\nq01\tac02\t1\n")))
    assert "expected the header" in message


def test_judged_queries_absent_from_the_queries_file_are_refused(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\nq01\tac02\t2\nq98\tac01\t1\nq99\tac01\t1\n"
    message = refused(eval_cli(*files(tmp_path, qrels=qrels)))
    assert "2 query id(s) not in queries.jsonl: q98, q99" in message


def test_unknown_modes_and_a_used_index_folder_are_refused(tmp_path):
    message = refused(eval_cli(*files(tmp_path), "--modes", "bm25,splade"))
    assert "splade" in message
    used = tmp_path / "index"
    used.mkdir()
    (used / "something").write_text("x")
    message = refused(eval_cli(*files(tmp_path), "--index-dir", str(used)))
    assert "not an empty folder" in message


# ------------------------------------------------------------------------------ the command

ROW = re.compile(r"^(bm25|dense|hybrid)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$")


def rows(stdout: str) -> dict[str, list[float]]:
    found = {}
    for line in stdout.splitlines():
        match = ROW.match(line.strip())
        if match:
            found[match.group(1)] = [float(v) for v in match.groups()[1:]]
    return found


def test_the_command_scores_the_three_modes_on_the_mini_set(tmp_path):
    out = tmp_path / "figures.json"
    result = eval_cli(*files(tmp_path), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.stdout and "Recall@100" in result.stdout
    assert "documents 80, queries 26 (of 27 in the file)" in result.stdout
    assert re.search(r"index time: lexical [\d.]+ s, dense [\d.]+ s", result.stdout)
    table = rows(result.stdout)
    assert set(table) == {"bm25", "dense", "hybrid"}
    for ndcg10, recall100, mrr10, p50, p95 in table.values():
        assert all(0.0 <= v <= 1.0 for v in (ndcg10, recall100, mrr10))
        assert 0.0 <= p50 <= p95
        assert mrr10 > 0.5  # the set is written so that its documents can be found
    assert "embedding" in result.stderr  # progress goes to stderr, the table to stdout

    figures = json.loads(out.read_text())
    assert figures["documents"] == 80 and figures["queries"] == 26
    assert figures["cores"] >= 1
    hybrid = figures["modes"]["hybrid"]
    assert hybrid["ndcg@10"] == pytest.approx(table["hybrid"][0], abs=1e-4)
    assert len(hybrid["per_query"]) == 26


def test_bm25_alone_builds_no_vectors_and_keeps_its_index_when_asked(tmp_path):
    folder = tmp_path / "kept"
    result = eval_cli(*files(tmp_path), "--modes", "bm25", "--index-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert set(rows(result.stdout)) == {"bm25"}
    assert "dense not built" in result.stdout
    assert (folder / "lexical" / "meta.json").exists()
    assert not (folder / "dense" / "vectors.faiss").exists()
