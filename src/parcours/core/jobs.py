"""Background work: a jobs table polled by a worker, plus periodic duties (content expiry).

A job is enqueued inside the caller's transaction, so a rollback drops it. A worker
claims one job at a time with a lease (``locked_until``); on PostgreSQL the claim uses
``FOR UPDATE SKIP LOCKED`` so that several workers never take the same job. A worker
killed mid-job leaves a lease that runs out, and the job is retried. Handlers open
their own sessions: long work (rendering a deck) must not hold SQLite's write lock.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parcours.core.db import new_session
from parcours.core.models import Job

log = logging.getLogger("parcours.jobs")

HANDLERS: dict[str, Callable[[dict], None]] = {}
PERIODIC: list[tuple[float, Callable[[], None]]] = []
LEASE = timedelta(minutes=15)
MAX_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def handler(kind: str):
    """Register the function that performs jobs of this kind."""

    def register(fn: Callable[[dict], None]):
        HANDLERS[kind] = fn
        return fn

    return register


def periodic(every_s: float):
    """Register a duty the worker performs every every_s seconds (and at start)."""

    def register(fn: Callable[[], None]):
        PERIODIC.append((every_s, fn))
        return fn

    return register


def enqueue(session: Session, kind: str, payload: dict, *, run_at: datetime | None = None) -> Job:
    job = Job(kind=kind, payload=payload, run_at=run_at or _now())
    session.add(job)
    session.flush()
    return job


def _claim() -> Job | None:
    while True:
        job = _claim_once()
        if job is None or job.state == "running":
            return job
        # a job whose worker died MAX_ATTEMPTS times was marked failed: look for another


def _claim_once() -> Job | None:
    with new_session() as session, session.begin():
        now = _now()
        stmt = (
            select(Job)
            .where(
                Job.run_at <= now,
                or_(
                    Job.state == "queued",
                    (Job.state == "running") & (Job.locked_until < now),
                ),
            )
            .order_by(Job.run_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        job = session.scalars(stmt).first()
        if job is None:
            return None
        if job.state == "running" and job.attempts >= MAX_ATTEMPTS:
            # its worker died (or hung) every time: stop retrying what kills workers
            job.state, job.finished_at, job.locked_until = "failed", now, None
            job.error = (job.error or "") + f" (lease ran out {job.attempts} times)"
            session.flush()
            session.expunge(job)
            return job
        job.state = "running"
        job.attempts += 1
        job.locked_until = now + LEASE
        job.lease = secrets.token_hex(16)
        session.flush()
        session.expunge(job)
        return job


def _finish(job: Job, error: str | None, retry: bool) -> None:
    with new_session() as session, session.begin():
        row = session.get(Job, job.id, with_for_update=True)
        if row is None or row.lease != job.lease:
            return  # our lease ran out and another worker took the job: its outcome counts
        job = row
        job.locked_until = None
        job.lease = None
        if error is None:
            job.state, job.finished_at = "done", _now()
        elif retry:
            job.state, job.error = "queued", error
            job.run_at = _now() + timedelta(seconds=5 * job.attempts)
        else:
            job.state, job.error, job.finished_at = "failed", error, _now()


def _load_handlers() -> None:
    # the domains register their handlers on import
    from parcours.consent import tasks  # noqa: F401
    from parcours.content import tasks  # noqa: F401, F811
    from parcours.email import tasks  # noqa: F401, F811


def run_one() -> bool:
    """Claim and perform one due job; False when none was due."""
    _load_handlers()
    job = _claim()
    if job is None:
        return False
    fn = HANDLERS.get(job.kind)
    if fn is None:
        _finish(job, f"no handler for {job.kind}", retry=False)
        return True
    try:
        fn(job.payload)
    except Exception as exc:  # a failed job is recorded, never lost, never crashes the worker
        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        _finish(job, detail[:2000], retry=job.attempts < MAX_ATTEMPTS and _retryable(exc))
    else:
        _finish(job, None, retry=False)
    return True


def _retryable(exc: Exception) -> bool:
    from parcours.core.errors import DomainError

    return not isinstance(exc, DomainError)  # a refused file stays refused


def run_pending(limit: int = 1000) -> int:
    """Perform due jobs until none is left (tests, `parcours worker --once`)."""
    done = 0
    while done < limit and run_one():
        done += 1
    return done


def run_periodic() -> None:
    _load_handlers()
    for _every, fn in PERIODIC:
        fn()


class Worker(threading.Thread):
    """The worker loop; `parcours serve` runs one in a thread, `parcours worker` in a process."""

    def __init__(self, poll_s: float = 1.0):
        super().__init__(name="parcours-worker", daemon=True)
        self.poll_s = poll_s
        self.stopping = threading.Event()

    def run(self) -> None:
        _load_handlers()
        last: dict[int, float] = {}
        while not self.stopping.is_set():
            now = time.monotonic()
            for i, (every, fn) in enumerate(PERIODIC):
                if now - last.get(i, -1e9) >= every:
                    last[i] = now
                    try:
                        fn()
                    except Exception:
                        log.exception("periodic duty %s failed", fn.__name__)
            try:
                busy = run_one()
            except Exception:  # the database may be briefly away; try again later
                log.exception("worker loop")
                busy = False
            if not busy:
                self.stopping.wait(self.poll_s)

    def stop(self) -> None:
        self.stopping.set()
