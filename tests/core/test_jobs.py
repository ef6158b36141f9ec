"""The jobs table and its worker, on a database file of their own (workers commit)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fpdf import FPDF
from sqlalchemy import select, update

from parcours.content import service
from parcours.content.models import ContentPage, ContentVersion
from parcours.core import audit, db, jobs
from parcours.core.errors import Invalid
from parcours.core.models import Job
from parcours.core.settings import get_settings

import factories


@pytest.fixture
def file_db(committed_db, content_dir) -> str:
    """The configured database is a fresh migrated SQLite file; no test transaction here."""
    return committed_db


@pytest.fixture
def calls():
    """A handler for test.kind that records its payloads; it fails as the payload says."""
    seen: list[dict] = []
    lock = threading.Lock()

    @jobs.handler("test.kind")
    def perform(payload: dict) -> None:
        with lock:
            seen.append(payload)
        if payload.get("fail") == "crash":
            raise RuntimeError(f"boom {payload['n']}")
        if payload.get("fail") == "refused":
            raise Invalid("This file is refused.", field="file")

    yield seen
    jobs.HANDLERS.pop("test.kind", None)


def make_pdf(path: Path, pages: int) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=28)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(text=f"Slide {n}")
    pdf.output(str(path))
    return path


def enqueue(*payloads: dict, kind: str = "test.kind") -> list[int]:
    with db.new_session() as session, session.begin():
        return [jobs.enqueue(session, kind, p).id for p in payloads]


def job(job_id: int) -> Job:
    with db.new_session(write=False) as session:
        return session.get(Job, job_id)


def make_due(job_id: int) -> None:
    """Skip the back-off before a retry."""
    with db.new_session() as session, session.begin():
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(Job).where(Job.id == job_id).values(run_at=past))


def test_each_job_is_performed_once(file_db, calls):
    ids = enqueue(*({"n": n} for n in range(3)))
    assert jobs.run_pending() == 3
    assert jobs.run_pending() == 0
    assert calls == [{"n": 0}, {"n": 1}, {"n": 2}]
    for job_id in ids:
        done = job(job_id)
        assert (done.state, done.attempts, done.error) == ("done", 1, None)
        assert done.finished_at is not None and done.locked_until is None


def test_workers_side_by_side_never_take_the_same_job(file_db, calls):
    enqueue(*({"n": n} for n in range(40)))
    threads = [threading.Thread(target=jobs.run_pending) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(p["n"] for p in calls) == list(range(40))


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(file_db, calls):
    with db.new_session() as session:
        session.begin()
        jobs.enqueue(session, "test.kind", {"n": 1})
        session.rollback()
    assert jobs.run_pending() == 0 and calls == []


def test_a_job_due_later_waits(file_db, calls):
    with db.new_session() as session, session.begin():
        later = datetime.now(UTC) + timedelta(hours=1)
        job_id = jobs.enqueue(session, "test.kind", {"n": 1}, run_at=later).id
    assert jobs.run_pending() == 0
    make_due(job_id)
    assert jobs.run_pending() == 1 and calls == [{"n": 1}]


def test_a_failing_job_is_retried_then_failed_with_its_error(file_db, calls):
    [job_id] = enqueue({"n": 7, "fail": "crash"})
    assert jobs.run_one()
    retry = job(job_id)
    assert (retry.state, retry.attempts) == ("queued", 1)
    assert "boom 7" in retry.error
    assert retry.run_at > datetime.now(UTC)  # backs off before the next attempt
    assert jobs.run_pending() == 0

    for attempt in (2, 3):
        make_due(job_id)
        assert jobs.run_one()
        assert job(job_id).attempts == attempt
    failed = job(job_id)
    assert failed.state == "failed" and failed.finished_at is not None
    assert "RuntimeError: boom 7" in failed.error
    make_due(job_id)
    assert jobs.run_pending() == 0
    assert len(calls) == jobs.MAX_ATTEMPTS


def test_a_refusal_is_not_retried(file_db, calls):
    [job_id] = enqueue({"n": 1, "fail": "refused"})
    assert jobs.run_pending() == 1
    failed = job(job_id)
    assert (failed.state, failed.attempts) == ("failed", 1)
    assert "This file is refused." in failed.error
    make_due(job_id)
    assert jobs.run_pending() == 0 and len(calls) == 1


def test_a_job_without_a_handler_fails(file_db):
    [job_id] = enqueue({"n": 1}, kind="test.nobody")
    assert jobs.run_pending() == 1
    failed = job(job_id)
    assert failed.state == "failed" and "no handler for test.nobody" in failed.error


def test_a_job_whose_lease_ran_out_is_claimed_again(file_db, calls):
    stale, leased = enqueue({"n": 1}, {"n": 2})
    now = datetime.now(UTC)
    with db.new_session() as session, session.begin():
        # two workers were killed mid-job: one lease ran out, the other still runs
        for job_id, until in ((stale, now - timedelta(seconds=1)), (leased, now + jobs.LEASE)):
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(state="running", attempts=1, locked_until=until)
            )
    assert jobs.run_pending() == 1
    assert calls == [{"n": 1}]
    again = job(stale)
    assert (again.state, again.attempts) == ("done", 2)
    assert job(leased).state == "running"


def test_the_worker_thread_performs_jobs_and_stops(file_db, calls):
    enqueue({"n": 1})
    worker = jobs.Worker(poll_s=0.05)
    worker.start()
    try:
        for _ in range(200):
            if calls:
                break
            threading.Event().wait(0.02)
    finally:
        worker.stop()
        worker.join(timeout=10)
    assert calls == [{"n": 1}] and not worker.is_alive()


def test_the_render_job_writes_pages_and_marks_the_version_ready(file_db, tmp_path):
    with db.new_session() as session, session.begin():
        audit.bind_actor(session, None, "test")
        marketing = factories.create_user(session, "marketing")
        product = factories.create_product(session)
        upload = make_pdf(tmp_path / "deck.pdf", pages=3)
        day = service.today()
        version = service.upload(
            session,
            marketing,
            upload,
            "deck.pdf",
            {
                "title": "Rendered by the worker",
                "content_type": "medical",
                "language": "en",
                "countries": ["FR"],
                "product_ids": [product.id],
                "valid_from": day,
                "valid_until": day + timedelta(days=30),
            },
        )
        version_id = version.id

    assert jobs.run_pending() == 1
    with db.new_session(write=False) as session:
        version = session.get(ContentVersion, version_id)
        assert (version.render_state, version.page_count, version.render_done) == ("ready", 3, 3)
        assert version.render_error is None
        texts = session.scalars(
            select(ContentPage.text)
            .where(ContentPage.version_id == version_id)
            .order_by(ContentPage.number)
        ).all()
        [render_job] = session.scalars(select(Job)).all()
        assert render_job.state == "done"
        count, problems = audit.verify(session)
    assert len(texts) == 3 and "Slide 2" in texts[1]
    assert problems == [] and count > 0
    folder = get_settings().content_dir / str(version_id)
    assert sorted(p.name for p in (folder / "pages").iterdir()) == [
        "0001.jpg",
        "0002.jpg",
        "0003.jpg",
    ]
    assert len(list((folder / "thumbs").iterdir())) == 3
    assert jobs.run_pending() == 0
