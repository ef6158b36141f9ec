#!/usr/bin/env python
"""Insight ingestion benchmark: pages per second through the whole pipeline on this machine.

Generated PDF reports (--documents of --pages pages, French and English sentences) are added
with the real service into a fresh SQLite database, then each goes through the worker's job
handler exactly as in production: text out of the PDF page by page, passages, vectors from
the local embedding model, BM25 and vector indexes, the document marked indexed. Timed per
stage. Prints one JSON document (also written to benchmarks/results/insight-ingest.json).

Usage:  .venv/bin/python benchmarks/insight_ingest.py [--documents 40] [--pages 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "insight-ingest.json"

SUBJECTS = {
    "en": [
        "Cardiologists",
        "General practitioners",
        "Endocrinologists",
        "Hospital pharmacists",
        "Oncologists",
        "Nurses in oncology",
        "Key opinion leaders",
        "Diabetologists",
    ],
    "fr": [
        "Les cardiologues",
        "Les médecins généralistes",
        "Les endocrinologues",
        "Les pharmaciens hospitaliers",
        "Les oncologues",
        "Les gériatres",
    ],
}
VERBS = {
    "en": ["prefer", "prescribe", "report", "expect", "rank", "question", "recommend"],
    "fr": ["préfèrent", "prescrivent", "déclarent", "attendent", "citent", "recommandent"],
}
OBJECTS = {
    "en": [
        "remote detailing calls of 15 minutes",
        "webinars on cardiovascular outcomes",
        "approved emails with one clear message",
        "direct oral anticoagulants",
        "GLP-1 receptor agonists",
        "biosimilars in hospital tenders",
        "medical information answered within 48 hours",
        "congress symposia",
    ],
    "fr": [
        "les visites à distance de 15 minutes",
        "les webinaires sur le risque cardiovasculaire",
        "les e-mails approuvés",
        "les anticoagulants oraux directs",
        "les agonistes du récepteur du GLP-1",
        "les biosimilaires à l'hôpital",
        "les réponses d'information médicale sous 48 heures",
    ],
}


def sentence(rng: random.Random, lang: str) -> str:
    pct = rng.randint(5, 95)
    if lang == "fr":
        return (
            f"{rng.choice(SUBJECTS['fr'])} {rng.choice(VERBS['fr'])} "
            f"{rng.choice(OBJECTS['fr'])} dans {pct} % des cas en {rng.randint(2019, 2026)}."
        )
    return (
        f"{rng.choice(SUBJECTS['en'])} {rng.choice(VERBS['en'])} "
        f"{rng.choice(OBJECTS['en'])} in {pct}% of cases in {rng.randint(2019, 2026)}."
    )


def make_pdf(path: Path, rng: random.Random, pages: int, lang: str) -> None:
    from fpdf import FPDF

    doc = FPDF()
    doc.set_title(f"Market research {path.stem}")
    for _ in range(pages):
        doc.add_page()
        doc.set_font("Helvetica", "B", 14)
        doc.multi_cell(0, 8, text=f"Market research {path.stem}", new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", size=10)
        # a dense report page: about 350 words
        doc.multi_cell(0, 5, text=" ".join(sentence(rng, lang) for _ in range(24)))
    doc.output(str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=40)
    ap.add_argument("--pages", type=int, default=25)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="insight-ingest-"))
    os.environ["PARCOURS_DATABASE_URL"] = f"sqlite:///{work / 'bench.db'}"
    os.environ["PARCOURS_INSIGHT_DIR"] = str(work / "insight")
    os.environ["PARCOURS_CONTENT_DIR"] = str(work / "content")
    os.environ["HF_HUB_OFFLINE"] = "1"

    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", os.environ["PARCOURS_DATABASE_URL"])
    command.upgrade(cfg, "head")

    from parcours.ai import embed, service, tasks
    from parcours.core.db import new_session
    from parcours.core.models import User

    rng = random.Random(11)
    files = []
    for i in range(args.documents):
        path = work / f"report-{i:03d}.pdf"
        make_pdf(path, rng, args.pages, "fr" if i % 2 else "en")
        files.append(path)
    embed.model()  # loaded once, as in a running worker; its load is reported apart
    t0 = time.perf_counter()
    embed.passages(["warm up"])
    model_warm_s = time.perf_counter() - t0

    with new_session() as session, session.begin():
        user = User(
            email="bench@example.test",
            full_name="Bench",
            role="marketing",
            password_hash="x",
            language="en",
        )
        session.add(user)
        session.flush()
        user_id = user.id

    stages = {"add": 0.0, "extract": 0.0, "embed_index": 0.0, "finish": 0.0}
    passages = pages = 0
    started = time.perf_counter()
    for path in files:
        t = time.perf_counter()
        with new_session() as session, session.begin():
            user = session.get(User, user_id)
            doc, _ = service.add_file(
                session, user, path.name, path.read_bytes(), acl=service.Acl.of(["marketing"])
            )
            doc_id = doc.id
        stages["add"] += time.perf_counter() - t
        t = time.perf_counter()
        with new_session() as session, session.begin():
            entries = service.prepare(session, doc_id)
        stages["extract"] += time.perf_counter() - t
        t = time.perf_counter()
        service.publish(doc_id, entries)
        stages["embed_index"] += time.perf_counter() - t
        t = time.perf_counter()
        with new_session() as session, session.begin():
            service.finish(session, doc_id)
            doc = session.get(type(doc), doc_id)
            assert doc.state == "indexed", doc.error
            pages += doc.pages
            passages += doc.chunks
        stages["finish"] += time.perf_counter() - t
    total = time.perf_counter() - started
    assert tasks  # the handler the worker runs is the same three steps

    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    result = {
        "benchmark": "insight ingestion",
        "cpu_count": os.cpu_count(),
        "documents": args.documents,
        "pages": pages,
        "passages": passages,
        "seconds": round(total, 2),
        "pages_per_s": round(pages / total, 2),
        "passages_per_s": round(passages / total, 2),
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "model_warm_first_call_s": round(model_warm_s, 3),
        "index_bytes": {
            "lexical": size(work / "insight" / "lexical"),
            "dense": size(work / "insight" / "dense"),
            "files": size(work / "insight" / "files"),
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "generated PDFs of ~350 words a page; every stage of the worker's job",
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"cores: {os.cpu_count()}", file=sys.stderr)


if __name__ == "__main__":
    main()
