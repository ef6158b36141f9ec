#!/usr/bin/env python
"""Content benchmark: upload-to-ready of real decks, slide-event ingestion, player page load.

Runs against SQLite or PostgreSQL and prints one JSON document (also written to
benchmarks/results/content-<backend>.json).

1. upload to ready: a 50-page PDF (fpdf2) and a 30-slide PPTX (python-pptx), text and a
   coloured shape on every page, generated in a temporary folder. From the start of
   `service.upload(...)` (committed) through `jobs.run_pending()` until the version's
   `render_state` reads "ready"; split into inspect, upload transaction, LibreOffice
   conversion, rasterising (per page) and the worker's database work. 3 runs by default.
2. slide events: `clm.ingest(session, rep, batch)` in batches of 500, one committed
   transaction per batch, for --events events over --calls calls of the rep, on a version
   approved through the real services (upload, render, submit, three signatures). Then the
   same events scattered over all calls, a resend of already stored events (idempotency),
   and `POST /api/v1/slide-events` against uvicorn with 2 concurrent clients.
3. player: `GET /present/{activity_id}/{version_id}` with a logged-in session cookie when
   that route exists (else the version detail API and the first page image), p50/p95/p99,
   and the first slide image download.

Usage:  .venv/bin/python benchmarks/content.py [--backend sqlite|postgresql|both]
        [--events N] [--quick] [--profile]
        .venv/bin/python benchmarks/content.py table
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crm import (  # noqa: E402  (the CRM benchmark's helpers, same folder)
    HOST,
    CpuMeter,
    ensure_pg_database,
    libpq,
    log,
    machine_info,
    migrate,
    peak_rss_mib,
    pg_database_name,
    reset_database,
    summarize,
    use_database,
    wait_idle,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/parcours_bench_content"
PASSWORD = "bench-password-123"
PLAYER_ROUTE = "/present/{activity_id}/{version_id}"
TARGETS = {"ingest_events_per_s": 5_000}  # from the issue, SQLite, in-process
BATCH = 500
PHRASES = (
    "Once-weekly dosing keeps patients on treatment through the first year.",
    "In the pivotal study, HbA1c fell by 1.4 points at week 26 versus 0.8 with placebo.",
    "The most common adverse events were mild nausea and headache, resolving within days.",
    "No dose adjustment is needed in mild to moderate renal impairment.",
    "Start at 0.25 mg, then increase every four weeks according to tolerance.",
    "Cardiovascular outcomes: major events reduced by 26 percent over two years.",
    "Store in a refrigerator between 2 and 8 degrees; after first use, up to 30 days.",
    "Refer to the summary of product characteristics before prescribing.",
)
COLOURS = ((0, 94, 184), (0, 150, 136), (233, 30, 99), (255, 152, 0), (103, 58, 183))


# --------------------------------------------------------------------------- documents


def make_pdf(path: Path, pages: int) -> Path:
    """A landscape detail aid: a title band, body text, a coloured shape and a footnote."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_auto_page_break(False)
    for n in range(1, pages + 1):
        colour = COLOURS[n % len(COLOURS)]
        pdf.add_page()
        pdf.set_fill_color(*colour)
        pdf.rect(0, 0, 297, 28, style="F")
        pdf.set_text_color(255, 255, 255)
        pdf.set_font("Helvetica", "B", 24)
        pdf.set_xy(12, 8)
        pdf.cell(text=f"Glucavia {n}/{pages}: {PHRASES[n % len(PHRASES)][:40]}")
        pdf.set_text_color(30, 30, 30)
        pdf.set_font("Helvetica", size=14)
        pdf.set_xy(12, 40)
        body = " ".join(PHRASES[(n + i) % len(PHRASES)] for i in range(6))
        pdf.multi_cell(160, 8, body)
        pdf.set_fill_color(*COLOURS[(n + 2) % len(COLOURS)])
        if n % 2:
            pdf.ellipse(190, 50, 90, 90, style="F")
        else:
            pdf.rect(190, 50, 90, 90, style="F", round_corners=True, corner_radius=8)
        pdf.set_font("Helvetica", "I", 9)
        pdf.set_xy(12, 195)
        pdf.cell(text=f"Ref. GLU-2026-{n:03d}. {PHRASES[-1]}")
    pdf.output(str(path))
    return path


def make_pptx(path: Path, slides: int) -> Path:
    """A 16:9 deck: title, four bullets, a filled shape with text, a footnote."""
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.util import Inches, Pt

    deck = Presentation()
    deck.slide_width, deck.slide_height = Inches(13.333), Inches(7.5)
    layout = deck.slide_layouts[1]  # title and content
    for n in range(1, slides + 1):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Glucavia {n}/{slides}: {PHRASES[n % len(PHRASES)][:40]}"
        body = slide.placeholders[1]
        body.left, body.top, body.width, body.height = (
            Inches(0.6),
            Inches(1.6),
            Inches(7.4),
            Inches(5),
        )
        frame = body.text_frame
        frame.text = PHRASES[n % len(PHRASES)]
        for i in range(1, 4):
            frame.add_paragraph().text = PHRASES[(n + i) % len(PHRASES)]
        kind = MSO_SHAPE.OVAL if n % 2 else MSO_SHAPE.ROUNDED_RECTANGLE
        shape = slide.shapes.add_shape(kind, Inches(8.6), Inches(1.8), Inches(4), Inches(4))
        shape.fill.solid()
        shape.fill.fore_color.rgb = RGBColor(*COLOURS[n % len(COLOURS)])
        shape.text_frame.text = f"-{20 + n % 10}%"
        shape.text_frame.paragraphs[0].runs[0].font.size = Pt(40)
        note = slide.shapes.add_textbox(Inches(0.6), Inches(6.8), Inches(12), Inches(0.4))
        note.text_frame.text = f"Ref. GLU-2026-{n:03d}. {PHRASES[-1]}"
        note.text_frame.paragraphs[0].runs[0].font.size = Pt(10)
    deck.save(str(path))
    return path


# --------------------------------------------------------------------------- setup


def setup_people(n_hcps: int, n_calls: int, seed: int) -> dict:
    """Users, one product, a territory with HCPs, and the rep's open calls (real services)."""
    from parcours.activities import service as activities
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.models import User

    with warnings.catch_warnings():  # factories imports fastapi.testclient, which warns
        warnings.simplefilter("ignore")
        import factories

    rng = random.Random(seed)
    out: dict = {}
    with new_session() as s, s.begin():
        audit.bind_actor(s, None, "bench")
        tree = factories.create_territory_tree(s)
        product = factories.create_product(s, "Glucavia")
        people = {
            "marketing": factories.create_user(
                s, "marketing", email="marketing@bench.test", password=PASSWORD
            ),
            "rep": factories.create_user(
                s,
                "rep",
                email="rep@bench.test",
                password=PASSWORD,
                country="FR",
                territories=[tree["north1"]],
            ),
        }
        for role in ("medical", "legal", "regulatory"):
            people[role] = factories.create_user(
                s, "reviewer", email=f"{role}@bench.test", password=PASSWORD, review_role=role
            )
        hcps = [factories.create_hcp(s, tree["north1"]).id for _ in range(n_hcps)]
        out = {k: {"id": u.id, "email": u.email} for k, u in people.items()}
        out["product_id"] = product.id
        rep_id = people["rep"].id
    calls: list[int] = []
    now = datetime.now(UTC)
    for start in range(0, n_calls, 500):  # the rep's calls, saved and still open
        with new_session() as s, s.begin():
            rep = s.get(User, rep_id)
            audit.bind_actor(s, rep.id, rep.email)
            for _ in range(min(500, n_calls - start)):
                act = activities.create_activity(
                    s,
                    rep,
                    account_ids=[rng.choice(hcps)],
                    channel="field_visit",
                    start_at=now - timedelta(minutes=60 + rng.randrange(60 * 24 * 20)),
                    status="saved",
                    duration_min=20,
                    product_ids=[out["product_id"]],
                )
                calls.append(act.id)
    out["calls"] = calls
    out["hcps"] = len(hcps)
    return out


def meta_for(people: dict, title: str) -> dict:
    return {
        "title": title,
        "content_type": "promotional",
        "language": "fr",
        "countries": ["FR"],
        "product_ids": [people["product_id"]],
        "key_messages": ["Once-weekly dosing", "Cardiovascular benefit"],
        "valid_until": date.today() + timedelta(days=365),
    }


@contextlib.contextmanager
def timed_calls(*targets: tuple[object, str]):
    """Wrap module functions to add their wall time to a dict while the block runs."""
    spent: dict[str, float] = {}
    originals = []
    for module, name in targets:
        fn = getattr(module, name)

        def wrapper(*a, _fn=fn, _name=name, **kw):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t0

        originals.append((module, name, fn))
        setattr(module, name, wrapper)
    try:
        yield spent
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)


def upload(people: dict, path: Path, filename: str, title: str) -> int:
    from parcours.content import service
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.models import User

    s = new_session()
    try:
        user = s.get(User, people["marketing"]["id"])
        audit.bind_actor(s, user.id, user.email)
        version = service.upload(s, user, path, filename, meta_for(people, title))
        s.commit()
        return version.id
    finally:
        s.close()


def upload_to_ready(people: dict, src: Path, staging: Path, pages: int, run: int) -> dict:
    """One upload timed from service.upload through the worker until render_state is ready."""
    from parcours.content import files, render, service
    from parcours.content.models import ContentVersion
    from parcours.core import jobs
    from parcours.core.db import new_session

    staged = staging / f"incoming-{run}-{src.name}"
    shutil.copyfile(src, staged)  # what the HTTP route's receive() leaves (not timed)
    with timed_calls(
        (files, "inspect"),
        (service, "upload"),
        (render, "render"),
        (render, "_convert_to_pdf"),
    ) as spent:
        t0 = time.perf_counter()
        vid = upload(people, staged, src.name, f"{src.stem} run {run}")
        t1 = time.perf_counter()
        done = jobs.run_pending()
        t2 = time.perf_counter()
        with new_session(write=False) as s:
            v = s.get(ContentVersion, vid)
            state, count, error = v.render_state, v.page_count, v.render_error
        t3 = time.perf_counter()
    if state != "ready" or count != pages or done != 1:
        raise SystemExit(f"render of {src.name} ended {state} ({count} pages, {error})")
    render_s = spent["render"]
    convert_s = spent.get("_convert_to_pdf", 0.0)
    return {
        "version_id": vid,
        "total_s": round(t3 - t0, 3),
        "inspect_s": round(spent["inspect"], 4),
        "upload_other_s": round(spent["upload"] - spent["inspect"], 4),
        "upload_commit_s": round((t1 - t0) - spent["upload"], 4),
        "job_s": round(t2 - t1, 3),
        "render_s": round(render_s, 3),
        "convert_s": round(convert_s, 3),
        "rasterize_s": round(render_s - convert_s, 3),
        "rasterize_per_page_ms": round((render_s - convert_s) / pages * 1000, 1),
        "render_per_page_ms": round(render_s / pages * 1000, 1),
        "worker_db_s": round((t2 - t1) - render_s, 4),
        "ready_check_s": round(t3 - t2, 4),
        "pages": count,
    }


def soffice_fixed_cost(tmp: Path, runs: int) -> dict:
    """LibreOffice start-up: a 1-slide deck with a fresh profile (as render does), and with
    a profile reused from the previous conversion."""
    from parcours.content import render
    from parcours.core.settings import get_settings

    deck = make_pptx(tmp / "one-slide.pptx", 1)
    fresh = []
    for i in range(runs):
        work = tmp / f"soffice-{i}"
        work.mkdir()
        t0 = time.perf_counter()
        render._convert_to_pdf(deck, work, get_settings())
        fresh.append(time.perf_counter() - t0)
        shutil.rmtree(work, ignore_errors=True)
    profile = tmp / "soffice-profile"
    reused = []
    for i in range(runs + 1):
        out = tmp / f"soffice-out-{i}"
        t0 = time.perf_counter()
        subprocess.run(
            [
                get_settings().soffice,
                f"-env:UserInstallation={profile.as_uri()}",
                "--headless",
                "--norestore",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out),
                str(deck),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(tmp)},
            timeout=180,
            check=True,
        )
        if i:  # the first one creates the profile
            reused.append(time.perf_counter() - t0)
    shutil.rmtree(profile, ignore_errors=True)
    return {
        "one_slide_fresh_profile_s": [round(x, 2) for x in fresh],
        "one_slide_fresh_profile_median_s": round(statistics.median(fresh), 2),
        "one_slide_reused_profile_s": [round(x, 2) for x in reused],
        "one_slide_reused_profile_median_s": round(statistics.median(reused), 2),
    }


def approve(people: dict, pdf: Path, staging: Path) -> tuple[int, int, dict]:
    """A version taken through upload, render, submit and three signatures."""
    from parcours.content import review, service
    from parcours.content.models import ContentVersion
    from parcours.core import audit, jobs
    from parcours.core.db import new_session
    from parcours.core.models import User

    t0 = time.perf_counter()
    staged = staging / "detail-aid.pdf"
    shutil.copyfile(pdf, staged)
    vid = upload(people, staged, "detail-aid.pdf", "Glucavia detail aid")
    jobs.run_pending()
    t1 = time.perf_counter()
    for who in ("marketing", "medical", "legal", "regulatory"):
        with new_session() as s, s.begin():
            user = s.get(User, people[who]["id"])
            audit.bind_actor(s, user.id, user.email)
            if who == "marketing":
                service.submit_for_review(s, user, vid)
            else:
                review.sign(s, user, vid, password=PASSWORD, decision="approved")
    t2 = time.perf_counter()
    with new_session(write=False) as s:
        v = s.get(ContentVersion, vid)
        state, pages, decided = v.state, v.page_count, v.decided_at
        ok = service.presentable(s, v)
    if state != "approved" or not ok:
        raise SystemExit(f"the detail aid ended {state} (presentable: {ok})")
    return (
        vid,
        pages,
        {
            "upload_render_s": round(t1 - t0, 3),
            "submit_sign_s": round(t2 - t1, 3),
            "decided_at": decided.isoformat(),
        },
    )


# --------------------------------------------------------------------------- slide events


def make_events(
    rng: random.Random,
    calls: list[int],
    version_id: int,
    pages: int,
    n: int,
    *,
    since: datetime,
    per_call: int = 0,
    scattered: bool = False,
) -> list[dict]:
    """n slide views: per_call of them per call in call order (a tablet syncing whole
    presentations; by default n spread evenly over the calls), or each on a random call
    (scattered: nearly one call per event in a batch, the worst case). They start between
    since (the version's approval: no slide counts before it) and now."""
    now = datetime.now(UTC)
    step = (now - since) / max(1, n)
    out: list[dict] = []
    per_call = per_call or max(1, -(-n // len(calls)))
    order = [rng.choice(calls) for _ in range(n)] if scattered else None
    seqs: dict[int, int] = {}
    for i in range(n):
        aid = order[i] if scattered else calls[(i // per_call) % len(calls)]
        seq = seqs.get(aid, 0)
        seqs[aid] = seq + 1
        out.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "activity_id": aid,
                "version_id": version_id,
                "page": seq % pages + 1,
                "seq": seq,
                "started_at": since + step * i,
                "duration_ms": rng.randint(1500, 90_000),
                "reaction": rng.choice((None,) * 6 + ("positive", "neutral", "negative")),
            }
        )
    return out


def batches(events: list[dict], size: int = BATCH) -> list[list[dict]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def slide_count() -> int:
    from sqlalchemy import func, select

    from parcours.content.models import SlideView
    from parcours.core.db import new_session

    with new_session(write=False) as s:
        return s.scalar(select(func.count()).select_from(SlideView))


def ingest_one(rep_id: int, batch: list[dict]) -> dict:
    from parcours.content import clm
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.models import User

    s = new_session()
    try:
        user = s.get(User, rep_id)
        audit.bind_actor(s, user.id, user.email)
        result = clm.ingest(s, user, batch)
        s.commit()
        return result
    finally:
        s.close()


def ingest_run(rep_id: int, events: list[dict], dbname: str | None) -> dict:
    lat, accepted, duplicates, rejected, sample = [], 0, 0, 0, None
    with CpuMeter(dbname=dbname) as meter:
        t0 = time.perf_counter()
        for batch in batches(events):
            t = time.perf_counter()
            r = ingest_one(rep_id, batch)
            lat.append((time.perf_counter() - t) * 1000)
            accepted += r["accepted"]
            duplicates += r["duplicates"]
            rejected += len(r["rejected"])
            sample = sample or (r["rejected"] or [None])[0]
        elapsed = time.perf_counter() - t0
    if rejected:
        raise SystemExit(f"{rejected} events were rejected, the bench data is wrong: {sample}")
    return {
        "events": len(events),
        "batches": len(lat),
        "accepted": accepted,
        "duplicates": duplicates,
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(events) / elapsed),
        "batch_ms": summarize(lat),
        "cpu": meter.result,
    }


def statements_per_batch(engine, rep_id: int, batch: list[dict]) -> dict:
    """The SQL statements one batch runs, counted by kind and table."""
    from sqlalchemy import event

    counts: dict[str, int] = {}

    def hook(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        verb = words[0].upper() if words else "?"
        table = "?"
        for key in ("FROM", "INTO", "UPDATE"):
            if key in (w.upper() for w in words):
                idx = [w.upper() for w in words].index(key)
                table = words[idx + 1].strip('"') if idx + 1 < len(words) else "?"
                break
        label = f"{verb} {table}" + (" (executemany)" if executemany else "")
        counts[label] = counts.get(label, 0) + 1

    event.listen(engine, "before_cursor_execute", hook)
    try:
        ingest_one(rep_id, batch)
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    return {"total": sum(counts.values()), "by_kind": dict(sorted(counts.items()))}


PROFILE_PARTS = (  # (file, function, label): where one ingestion spends its time
    ("clm.py", "ingest", "clm.ingest, whole"),
    ("clm.py", "presenting_call", "presenting_call (get_activity + can_read, per call)"),
    ("audit.py", "note", "audit.note (chain head read + insert, per call)"),
    ("persistence.py", "_emit_insert_statements", "slide_views insert (ORM bulk)"),
    ("session.py", "commit", "commit"),
)


def profile_ingest(rep_id: int, events: list[dict], label: str) -> dict:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for batch in batches(events):
        ingest_one(rep_id, batch)
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    total = sum(v[2] for v in stats.stats.values()) or 1e-9  # own times add up to the run
    parts = {}
    for suffix, func, text in PROFILE_PARTS:
        ct = sum(
            v[3]
            for (f, _line, name), v in stats.stats.items()
            if f.endswith(suffix) and name == func
        )
        parts[text] = f"{ct / total * 100:.0f}%"
    stats.strip_dirs().sort_stats("cumulative").print_stats(25)
    top = [line for line in buf.getvalue().splitlines() if line.strip()][-26:]
    return {
        "variant": label,
        "events": len(events),
        "seconds_under_profiler": round(wall, 2),
        "share_of_time": parts,
        "top_cumulative": top,
    }


# --------------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """`python -m uvicorn parcours.app:create_app --factory` in its own process group."""

    def __init__(self, url: str, content_dir: Path):
        self.url, self.content_dir = url, content_dir
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        import httpx

        env = {
            **os.environ,
            "PARCOURS_DATABASE_URL": self.url,
            "PARCOURS_CONTENT_DIR": str(self.content_dir),
            "PARCOURS_SECRET_KEY": os.environ["PARCOURS_SECRET_KEY"],
            "PARCOURS_EMBEDDED_WORKER": "false",
        }
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "parcours.app:create_app",
            "--factory",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"uvicorn exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("uvicorn did not become healthy in 90 s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __exit__(self, *exc):
        self.stop()


def token_for(base: str, email: str) -> str:
    import httpx

    r = httpx.post(
        base + "/api/v1/auth/token", json={"email": email, "password": PASSWORD}, timeout=30
    )
    if r.status_code != 200:
        raise SystemExit(f"token for {email} failed ({r.status_code}): {r.text[:200]}")
    return r.json()["access_token"]


def http_ingest(
    server: Server, token: str, events: list[dict], clients: int, dbname: str | None
) -> dict:
    """POST /api/v1/slide-events, batches of 500, `clients` threads on keep-alive connections."""
    import httpx

    def body(batch: list[dict]) -> bytes:
        return json.dumps(
            {"events": [{**e, "started_at": e["started_at"].isoformat()} for e in batch]}
        ).encode()

    bodies = [body(b) for b in batches(events)]
    warm, bodies = bodies[:2], bodies[2:]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    lock = threading.Lock()
    todo = iter(bodies)
    lat: list[float] = []
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0, "error_sample": None}

    def worker(items) -> None:
        with httpx.Client(base_url=server.base, headers=headers, timeout=120) as c:
            while True:
                with lock:
                    data = next(items, None)
                if data is None:
                    return
                t = time.perf_counter()
                r = c.post("/api/v1/slide-events", content=data)
                dt = (time.perf_counter() - t) * 1000
                with lock:
                    if r.status_code != 200:
                        totals["errors"] += 1
                        totals["error_sample"] = totals["error_sample"] or r.text[:300]
                        continue
                    lat.append(dt)
                    res = r.json()
                    totals["accepted"] += res["accepted"]
                    totals["duplicates"] += res["duplicates"]
                    totals["rejected"] += len(res["rejected"])

    worker(iter(warm))  # connection, compiled statements, the server's caches
    warm_accepted = totals["accepted"]
    totals.update(accepted=0, duplicates=0, rejected=0)
    lat.clear()
    with CpuMeter([server.proc.pid], dbname) as meter:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(todo,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    sent = sum(len(b) for b in batches(events)[2:])
    return {
        "clients": clients,
        "events": sent,
        "warmup_events": warm_accepted,
        "requests": len(lat),
        "seconds": round(elapsed, 2),
        "events_per_s": round(totals["accepted"] / elapsed),
        "request_ms": summarize(lat),
        "request_body_kib": round(sum(len(b) for b in bodies) / max(1, len(bodies)) / 1024, 1),
        **totals,
        "cpu": meter.result,
        "server_peak_rss_mib": peak_rss_mib(server.proc.pid),
    }


def timed_gets(client, path: str, n: int, expect: int = 200) -> tuple[list[float], int]:
    lat, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        lat.append((time.perf_counter() - t) * 1000)
        if r.status_code != expect:
            raise SystemExit(f"GET {path}: {r.status_code} {r.text[:200]}")
        size = len(r.content)
    return lat, size


def player_routes() -> bool:
    """Whether the application serves the player page (routers included without prefix)."""
    from parcours.app import create_app

    def paths(routes):
        for r in routes:
            yield getattr(r, "path", None)
            inner = getattr(r, "original_router", None)  # FastAPI's included routers
            if inner is not None:
                yield from paths(inner.routes)

    return PLAYER_ROUTE in set(paths(create_app().routes))


def browser_login(client, email: str) -> None:
    page = client.get("/login")
    match = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "_csrf": match.group(1) if match else ""},
        follow_redirects=False,
    )
    if r.status_code != 303 or "parcours" not in client.cookies:
        raise SystemExit(f"login as {email} failed ({r.status_code}): {r.text[:200]}")


def player(server: Server, token: str, rep_email: str, aid: int, vid: int, n: int) -> dict:
    """The player page (or, without it, the version detail API) and the first slide image."""
    import httpx

    out: dict = {"requests": n, "player_module": (ROOT / "src/parcours/content/player.py").exists()}
    api = httpx.Client(
        base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    image_api = f"/api/v1/content-versions/{vid}/pages/1.jpg"
    with api:
        t = time.perf_counter()
        r = api.get(image_api)
        first_api_image_ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise SystemExit(f"GET {image_api}: {r.status_code} {r.text[:200]}")
        timed_gets(api, f"/api/v1/content-versions/{vid}", 10)
        lat, size = timed_gets(api, f"/api/v1/content-versions/{vid}", n)
        out["version_detail_api"] = {**summarize(lat), "bytes": size, "auth": "bearer"}
        lat, size = timed_gets(api, image_api, n)
        out["first_page_image_api"] = {
            **summarize(lat),
            "first_ms": round(first_api_image_ms, 2),
            "bytes": size,
            "auth": "bearer",
            "path": image_api,
        }
    if not player_routes():
        out["measured"] = "api_fallback"
        out["note"] = (
            f"GET {PLAYER_ROUTE} does not exist yet: measured GET /api/v1/content-versions/"
            "{id} and GET .../pages/1.jpg with a bearer token instead"
        )
        return out
    out["measured"] = "player_page"
    with httpx.Client(base_url=server.base, timeout=30) as browser:
        browser_login(browser, rep_email)
        path = f"/present/{aid}/{vid}"
        t = time.perf_counter()
        r = browser.get(path)
        out["first_load_ms"] = round((time.perf_counter() - t) * 1000, 2)
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: {r.status_code} {r.text[:300]}")
        html = r.text
        timed_gets(browser, path, 10)
        lat, size = timed_gets(browser, path, n)
        out["player_page"] = {**summarize(lat), "bytes": size, "auth": "session cookie"}
        found = re.search(r'src="([^"]*pages/0*1\.jpg[^"]*)"', html) or re.search(
            r'"([^"\s]*/pages/0*1\.jpg[^"\s]*)"', html
        )
        if found:
            src = found.group(1).replace("&amp;", "&")
            t = time.perf_counter()
            r = browser.get(src)
            first = (time.perf_counter() - t) * 1000
            if r.status_code == 200:
                lat, size = timed_gets(browser, src, n)
                out["first_slide_image"] = {
                    **summarize(lat),
                    "first_ms": round(first, 2),
                    "bytes": size,
                    "auth": "session cookie",
                    "path": src,
                }
            else:
                out["first_slide_image_error"] = f"GET {src}: {r.status_code}"
        else:
            out["first_slide_image_error"] = "no page-1 image URL found in the player page"
    return out


# --------------------------------------------------------------------------- per backend


def median_of(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and k != "version_id"]
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}


def bench_backend(backend: str, args) -> dict:
    from parcours.core import db

    started = datetime.now(UTC)
    if backend == "sqlite":
        sqlite_path = Path(args.sqlite_path)
        if not sqlite_path.is_absolute():
            sqlite_path = ROOT / sqlite_path
        url = f"sqlite:///{sqlite_path}"
    else:
        sqlite_path = Path("/nonexistent")
        url = args.pg_url
        ensure_pg_database(url)
    dbname = pg_database_name(url) if backend == "postgresql" else None
    log(f"=== {backend}: {url} (cores: {os.cpu_count()})")
    reset_database(backend, url, sqlite_path)
    migrate(url)

    tmp = Path(tempfile.mkdtemp(prefix="parcours-bench-content-"))
    library, docs, staging = tmp / "library", tmp / "docs", tmp / "library" / ".incoming"
    for d in (library, docs, staging):
        d.mkdir(parents=True, exist_ok=True)
    os.environ["PARCOURS_CONTENT_DIR"] = str(library)
    os.environ.setdefault("PARCOURS_SECRET_KEY", secrets.token_urlsafe(32))
    os.environ["PARCOURS_EMBEDDED_WORKER"] = "false"
    engine = use_database(url)
    notes: list[str] = []
    try:
        log(f"setup: users, {args.calls:,} open calls of the rep")
        t0 = time.perf_counter()
        people = setup_people(args.hcps, args.calls, args.seed)
        setup_s = time.perf_counter() - t0

        # ---- 1. upload to ready
        pdf = make_pdf(docs / "glucavia-50-pages.pdf", args.pdf_pages)
        pptx = make_pptx(docs / "glucavia-30-slides.pptx", args.pptx_slides)
        documents = {
            "pdf": {"path": pdf, "pages": args.pdf_pages},
            "pptx": {"path": pptx, "pages": args.pptx_slides},
        }
        upload_res: dict = {}
        for kind, doc in documents.items():
            runs = []
            for i in range(args.runs):
                wait_idle(args.wait_idle)
                kids = resource.getrusage(resource.RUSAGE_CHILDREN)
                with CpuMeter(dbname=dbname) as meter:
                    r = upload_to_ready(people, doc["path"], staging, doc["pages"], i)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                # LibreOffice runs as a child: its CPU is ours, not other people's
                soffice = (after.ru_utime + after.ru_stime - kids.ru_utime - kids.ru_stime) / r[
                    "total_s"
                ]
                meter.result["soffice_cores"] = round(soffice, 2)
                meter.result["foreign_cores"] = round(
                    max(0.0, meter.result["foreign_cores"] - soffice), 2
                )
                r["cpu"] = meter.result
                runs.append(r)
                log(
                    f"  upload->ready {kind} run {i + 1}: {r['total_s']:.2f} s (inspect "
                    f"{r['inspect_s'] * 1000:.1f} ms, convert {r['convert_s']:.2f} s, "
                    f"{r['rasterize_per_page_ms']:.0f} ms/page)"
                )
            upload_res[kind] = {
                "pages": doc["pages"],
                "file_kib": round(doc["path"].stat().st_size / 1024, 1),
                "median": median_of(runs),
                "runs": runs,
            }
        log("  LibreOffice start-up (1-slide deck)")
        upload_res["soffice"] = soffice_fixed_cost(tmp, max(1, min(args.runs, 3)))

        # ---- 2. slide events
        deck = make_pdf(docs / "detail-aid.pdf", 20)
        vid, pages, approval = approve(people, deck, staging)
        since = datetime.fromisoformat(approval["decided_at"])
        rep_id, calls = people["rep"]["id"], people["calls"]
        rng = random.Random(args.seed)
        log(f"ingest: {args.events:,} events over {len(calls):,} calls, batches of {BATCH}")
        per_call = max(1, -(-args.events // len(calls)))  # ~50 slides per call by default
        grouped = make_events(rng, calls, vid, pages, since=since, n=args.events, per_call=per_call)
        before = slide_count()
        wait_idle(args.wait_idle)
        ingest: dict = {"grouped": ingest_run(rep_id, grouped, dbname)}
        ingest["grouped"]["count_after"] = slide_count()
        ingest["grouped"]["count_before"] = before
        log(f"  grouped by call: {ingest['grouped']['events_per_s']:,} events/s")

        resend_n = min(args.resend, len(grouped))
        resend = random.Random(args.seed + 1).sample(grouped, resend_n)
        before = slide_count()
        wait_idle(args.wait_idle)
        ingest["resend"] = ingest_run(rep_id, resend, dbname)
        ingest["resend"].update(count_before=before, count_after=slide_count())
        ingest["resend"]["idempotent"] = (
            ingest["resend"]["count_after"] == before
            and ingest["resend"]["accepted"] == 0
            and ingest["resend"]["duplicates"] == resend_n
        )
        log(
            f"  resend of {resend_n:,}: {ingest['resend']['events_per_s']:,} events/s, "
            f"count {before:,} -> {ingest['resend']['count_after']:,}"
        )

        scattered = make_events(
            rng, calls, vid, pages, since=since, n=args.scattered, scattered=True
        )
        wait_idle(args.wait_idle)
        ingest["scattered"] = ingest_run(rep_id, scattered, dbname)
        log(f"  scattered over calls: {ingest['scattered']['events_per_s']:,} events/s")

        ingest["statements_per_batch"] = {
            "grouped": statements_per_batch(
                engine,
                rep_id,
                make_events(rng, calls, vid, pages, since=since, n=BATCH, per_call=per_call),
            ),
            "scattered": statements_per_batch(
                engine,
                rep_id,
                make_events(rng, calls, vid, pages, since=since, n=BATCH, scattered=True),
            ),
            "resend": statements_per_batch(engine, rep_id, grouped[:BATCH]),
        }
        target = TARGETS["ingest_events_per_s"]
        profiles = []
        for variant in ("grouped", "scattered"):
            if args.profile or ingest[variant]["events_per_s"] < target:
                log(f"  profiling {variant} ingestion")
                evs = make_events(
                    rng,
                    calls,
                    vid,
                    pages,
                    10 * BATCH,
                    since=since,
                    per_call=per_call,
                    scattered=variant == "scattered",
                )
                profiles.append(profile_ingest(rep_id, evs, variant))
        if profiles:
            ingest["profiles"] = profiles
        engine.dispose()

        # ---- HTTP: ingestion, player
        http_events = make_events(
            rng, calls, vid, pages, since=since, n=args.http_events, per_call=per_call
        )
        with Server(url, library) as server:
            rep_token = token_for(server.base, people["rep"]["email"])
            before = slide_count()
            wait_idle(args.wait_idle)
            ingest["http"] = http_ingest(server, rep_token, http_events, args.clients, dbname)
            ingest["http"].update(count_before=before, count_after=slide_count())
            log(
                f"  HTTP, {args.clients} clients: {ingest['http']['events_per_s']:,} events/s "
                f"(request p50 {ingest['http']['request_ms'].get('p50_ms')} ms)"
            )
            wait_idle(args.wait_idle)
            player_res = player(
                server, rep_token, people["rep"]["email"], calls[0], vid, args.requests
            )
            log(f"  player: {player_res['measured']}")
        ingest["final_count"] = slide_count()
    finally:
        db.reset()
        if args.keep_files:
            log(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # ---- targets and notes
    g = ingest["grouped"]["events_per_s"]
    met = g >= TARGETS["ingest_events_per_s"]
    targets = [
        {
            "figure": "slide events/s, in-process, batches of 500 grouped by call",
            "measured": g,
            "target": f">= {TARGETS['ingest_events_per_s']} (SQLite)",
            "met": met if backend == "sqlite" else None,
        }
    ]
    st = ingest["statements_per_batch"]
    notes.append(
        f"one batch of {BATCH} runs {st['grouped']['total']} SQL statements when its events "
        f"belong to ~{-(-BATCH // per_call)} calls ({per_call} slides per call), and "
        f"{st['scattered']['total']} when they are scattered over all {len(calls)} calls: "
        "clm.ingest costs 2 queries per distinct call (presenting_call: the activity, then "
        "can_read) and 2 per distinct call for audit.note (chain head read, then insert), "
        "on top of one duplicate lookup and the insert"
    )
    inserts = sum(n for k, n in st["grouped"]["by_kind"].items() if k.startswith("INSERT slide"))
    if inserts > 3:
        notes.append(
            f"the {BATCH} slide_views rows of a batch go to the database in {inserts} INSERT "
            "statements, not one executemany: clm.ingest inserts through the ORM "
            "(insert(SlideView)), whose bulk mode leaves out None values (reaction is None "
            "for most slides) and groups consecutive rows by their set of keys; Core "
            "insert(SlideView.__table__) or execution_options(render_nulls=True) keeps one group"
        )
    for p in ingest.get("profiles", []):
        shares = ", ".join(f"{k} {v}" for k, v in p["share_of_time"].items())
        notes.append(f"profile, {p['variant']} events (cProfile, {p['events']} events): {shares}")
    notes.append(
        "upload-to-ready runs the job right after the upload commits (jobs.run_pending); a "
        "real worker adds up to worker_poll_s (1 s) of queueing before it claims the job"
    )
    sof = upload_res["soffice"]
    notes.append(
        "LibreOffice's start-up is most of a PPTX conversion: a 1-slide deck takes "
        f"{sof['one_slide_fresh_profile_median_s']} s with a fresh profile (as render does), "
        f"{sof['one_slide_reused_profile_median_s']} s with a reused one"
    )
    if player_res["measured"] == "api_fallback":
        notes.append(player_res["note"])

    return {
        "benchmark": "content",
        "backend": backend,
        "started_at": started.isoformat(),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "cores": os.cpu_count(),
        "machine": machine_info(),
        "config": {
            "events": args.events,
            "calls": args.calls,
            "hcps": args.hcps,
            "batch": BATCH,
            "resend": args.resend,
            "scattered": args.scattered,
            "http_events": args.http_events,
            "clients": args.clients,
            "runs": args.runs,
            "pdf_pages": args.pdf_pages,
            "pptx_slides": args.pptx_slides,
            "requests": args.requests,
            "quick": args.quick,
            "seed": args.seed,
            "database": url if backend == "sqlite" else libpq(url),
        },
        "targets": targets,
        "setup": {"seconds": round(setup_s, 1), "hcps": people["hcps"], "calls": len(calls)},
        "upload_to_ready": upload_res,
        "approval": {"version_id": vid, "pages": pages, **approval},
        "ingest": ingest,
        "player": player_res,
        "bench_process_peak_rss_mib": peak_rss_mib(),
        "notes": notes,
    }


# --------------------------------------------------------------------------- summary table


def table_main(argv: list[str]) -> None:
    """`content.py table`: the figures of benchmarks/results/content-*.json as Markdown."""
    runs = {}
    for backend in ("sqlite", "postgresql"):
        path = RESULTS / f"content-{backend}.json"
        if path.exists():
            runs[backend] = json.loads(path.read_text())
    if not runs:
        raise SystemExit("no content results in benchmarks/results yet")

    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def lat(d: dict | None) -> str:
        if not d or not d.get("n"):
            return "n/a"
        return f"{d['p50_ms']:.1f} / {d['p95_ms']:.1f} / {d['p99_ms']:.1f} / {d['max_ms']:.0f}"

    def ready(kind: str):
        def fn(r: dict) -> str:
            u = get(r, "upload_to_ready", kind)
            if not u:
                return "n/a"
            each = ", ".join(f"{x['total_s']:.2f}" for x in u["runs"])
            return f"**{u['median']['total_s']:.2f} s** ({each})"

        return fn

    def split(kind: str):
        def fn(r: dict) -> str:
            m = get(r, "upload_to_ready", kind, "median")
            if not m:
                return "n/a"
            txn = m["upload_other_s"] + m["upload_commit_s"]
            out = f"{m['inspect_s'] * 1000:.1f} ms / {txn * 1000:.1f} ms / "
            if kind == "pptx":
                out += f"{m['convert_s']:.2f} s + "
            out += f"{m['rasterize_per_page_ms']:.0f} ms/page / {m['worker_db_s'] * 1000:.0f} ms"
            return out

        return fn

    def rate(key: str):
        def fn(r: dict) -> str:
            d = get(r, "ingest", key)
            if not d:
                return "n/a"
            out = f"**{d['events_per_s']:,}/s** ({d['events']:,} in {d['seconds']:.1f} s"
            if key == "http":
                return out + f"; request {lat(d['request_ms'])} ms)"
            out += f"; batch {lat(d['batch_ms'])} ms)"
            if key == "resend":
                out += f"; count {d['count_before']:,} -> {d['count_after']:,}, idempotent " + (
                    "yes" if d["idempotent"] else "**NO**"
                )
            return out

        return fn

    def player_page(r: dict) -> str:
        p = r.get("player", {})
        if p.get("measured") == "player_page":
            return lat(p.get("player_page"))
        return "not built yet; API detail: " + lat(p.get("version_detail_api"))

    def image(r: dict) -> str:
        p = r.get("player", {})
        d = p.get("first_slide_image") or p.get("first_page_image_api")
        if not d:
            return "n/a"
        return f"first {d['first_ms']:.1f} ms; {lat(d)} ({d['bytes'] / 1024:.0f} KiB)"

    t = TARGETS["ingest_events_per_s"]
    rows = [
        ("Upload to ready, 50-page PDF: median (each run)", "none set", ready("pdf")),
        ("  inspect / upload txn / render / worker DB", "", split("pdf")),
        ("Upload to ready, 30-slide PPTX: median (each run)", "none set", ready("pptx")),
        ("  inspect / upload txn / soffice + render / worker DB", "", split("pptx")),
        (
            "Slide events, in-process, 500/batch, grouped by call",
            f">= {t:,}/s (SQLite)",
            rate("grouped"),
        ),
        ("Slide events, same, scattered over all calls", "", rate("scattered")),
        ("Resend of stored events (duplicates skipped)", "idempotent", rate("resend")),
        ("Slide events, HTTP, 2 clients, 500/request", "none set", rate("http")),
        ("Player page, 1 client (ms: p50 / p95 / p99 / max)", "none set", player_page),
        ("First slide image (ms)", "none set", image),
    ]
    names = list(runs)
    print("| Figure | Target | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for label, target, fn in rows:
        print(f"| {label} | {target} | " + " | ".join(fn(runs[n]) for n in names) + " |")
    first = next(iter(runs.values()))
    print(
        f"\ncores: {first['cores']}; cpu: {first['machine'].get('cpu')}; "
        + "; ".join(f"{n} run {r['started_at'][:16]}" for n, r in runs.items())
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="content.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument(
        "--events", type=int, default=None, help="slide events ingested in-process (100,000)"
    )
    p.add_argument("--calls", type=int, default=2_000, help="the rep's calls they spread over")
    p.add_argument("--hcps", type=int, default=200, help="HCPs in the rep's territory")
    p.add_argument("--resend", type=int, default=20_000, help="stored events sent again")
    p.add_argument("--scattered", type=int, default=None, help="default: events / 5")
    p.add_argument("--http-events", type=int, default=None, help="default: events / 2")
    p.add_argument("--clients", type=int, default=2, help="concurrent HTTP ingestion clients")
    p.add_argument("--runs", type=int, default=3, help="uploads of each document")
    p.add_argument("--pdf-pages", type=int, default=50)
    p.add_argument("--pptx-slides", type=int, default=30)
    p.add_argument("--requests", type=int, default=200, help="player page requests")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--sqlite-path", default="var/bench/content.db")
    p.add_argument("--wait-idle", type=float, default=0, help="as in crm.py")
    p.add_argument("--profile", action="store_true", help="profile ingestion even when on target")
    p.add_argument("--keep-files", action="store_true", help="keep the generated files")
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 run per document, 10,000 events, 2,000 resent, 50 player requests",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.requests = 1, 50
        args.events = args.events or 10_000
        args.resend = min(args.resend, 2_000)
    args.events = args.events or 100_000
    if args.scattered is None:
        args.scattered = max(BATCH, args.events // 5)
    if args.http_events is None:
        args.http_events = max(4 * BATCH, args.events // 2)
    if min(args.events, args.calls, args.runs, args.requests, args.clients) < 1:
        p.error("--events, --calls, --runs, --requests and --clients must be positive")
    return args


def main(argv: list[str]) -> None:
    if argv and argv[0] == "table":
        return table_main(argv[1:])
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {}
    for backend in backends:
        res = bench_backend(backend, args)
        path = RESULTS / f"content-{backend}.json"
        path.write_text(json.dumps(res, indent=2, default=str) + "\n")
        log(f"results written to {path.relative_to(ROOT)}")
        out[backend] = res
    print(json.dumps(out[backends[0]] if len(backends) == 1 else out, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
