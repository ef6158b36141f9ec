"""The help-desk evaluation: its share of right answers on the demo knowledge base."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcours.ai import commands

from insight_world import build

QUESTIONS = Path(__file__).parent / "data" / "helpdesk.jsonl"


def test_demo_knowledge_base_reaches_the_seeds_80_percent(session, tmp_path):
    world = build(session, tmp_path / "docs")
    report = commands.helpdesk_report(session, world.rep, commands.load_questions(QUESTIONS))
    wrong = [(r["question"], r["outcome"], r["answer"]) for r in report.rows if not r["right"]]
    assert report.total == 20
    assert report.share >= 0.8, wrong
    # nothing was kept: the evaluation asks in a transaction it rolls back
    from parcours.ai.models import InsightQuestion

    assert session.query(InsightQuestion).count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json\n", "line 1: not JSON"),
        ('{"question": "x"}\n', "line 1: expected"),
        ("\n", "no question"),
    ],
)
def test_bad_question_files_are_named(tmp_path, body, message):
    path = tmp_path / "q.jsonl"
    path.write_text(body)
    from parcours.cli import app

    result = CliRunner().invoke(app, ["eval", "helpdesk", "--questions", str(path)])
    assert result.exit_code == 2
    assert message in result.output
