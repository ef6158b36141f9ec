"""Background work: a jobs table polled by a worker, plus periodic duties (content expiry).

A job is enqueued inside the caller's transaction, so a rollback drops it. A worker
claims one job at a time with a lease (``locked_until``), or, for a kind registered with
a batch size (email sending), up to that many due jobs of the kind under one lease; on
PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so that several workers never take
the same job. A worker killed mid-job leaves a lease that runs out, and the job is
retried. Handlers open their own sessions: long work (rendering a deck) must not hold
SQLite's write lock.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from parcours.core.db import new_session
from parcours.core.models import Job

log = logging.getLogger("parcours.jobs")

HANDLERS: dict[str, Callable] = {}
# kinds whose handler takes several due jobs at once (a list of jobs, one outcome each)
BATCHES: dict[str, int] = {}
# kinds whose lease is not LEASE: how long a worker may hold one before another takes it up
LEASES: dict[str, Callable[[], timedelta]] = {}
PERIODIC: list[tuple[float, Callable[[], None]]] = []
LEASE = timedelta(minutes=15)
MAX_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def handler(kind: str, *, batch: int = 1, lease: Callable[[], timedelta] | None = None):
    """Register the function that performs jobs of this kind.

    With batch > 1 the worker hands it up to that many due jobs of the kind at once (one
    lease for all); it returns, for each job in order, None when done or the exception
    that stopped that job (retried like a raised one). lease, when given, says how long
    a claim lasts (read at each claim, so that settings apply).
    """

    def register(fn: Callable):
        HANDLERS[kind] = fn
        if batch > 1:
            BATCHES[kind] = batch
        else:
            BATCHES.pop(kind, None)
        if lease is not None:
            LEASES[kind] = lease
        else:
            LEASES.pop(kind, None)
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


def enqueue_many(session: Session, kind: str, items: list[tuple[dict, datetime | None]]) -> None:
    """Several jobs of one kind, (payload, run_at) each, in one flush."""
    session.add_all(Job(kind=kind, payload=payload, run_at=at or _now()) for payload, at in items)
    session.flush()


class Release(Exception):
    """A batch handler's outcome for a job it did not start (out of time): the job goes
    back to the queue, due now, and the try is not counted."""


def _release(jobs: list[Job]) -> None:
    if not jobs:
        return
    with new_session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in jobs]), Job.lease == jobs[0].lease)
            .values(
                state="queued",
                attempts=Job.attempts - 1,
                run_at=_now(),
                locked_until=None,
                lease=None,
            )
            .execution_options(synchronize_session=False)
        )


def _lease(kind: str) -> timedelta:
    return LEASES[kind]() if kind in LEASES else LEASE


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
        job.locked_until = now + _lease(job.kind)
        job.lease = secrets.token_hex(16)
        session.flush()
        session.expunge(job)
        return job


def _claim_more(first: Job, limit: int) -> list[Job]:
    """More queued, due jobs of the first one's kind, under the first one's lease."""
    if limit <= 0:
        return []
    with new_session() as session, session.begin():
        now = _now()
        rows = list(
            session.scalars(
                select(Job)
                .where(Job.kind == first.kind, Job.state == "queued", Job.run_at <= now)
                .order_by(Job.run_at, Job.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not rows:
            return []
        session.execute(
            update(Job)
            .where(Job.id.in_([r.id for r in rows]), Job.state == "queued")
            .values(
                state="running",
                attempts=Job.attempts + 1,
                locked_until=now + _lease(first.kind),
                lease=first.lease,
            )
            .execution_options(synchronize_session=False)
        )
        ids = [r.id for r in rows]
        session.expire_all()
        claimed = list(
            session.scalars(select(Job).where(Job.id.in_(ids), Job.lease == first.lease))
        )
        for job in claimed:
            session.expunge(job)
        return claimed


def _finish_done(jobs: list[Job]) -> None:
    """Several jobs of one lease done, in one statement."""
    if not jobs:
        return
    with new_session() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in jobs]), Job.lease == jobs[0].lease)
            .values(state="done", finished_at=_now(), locked_until=None, lease=None)
            .execution_options(synchronize_session=False)
        )


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
    from parcours.ai import tasks as ai_tasks  # noqa: F401
    from parcours.analytics import tasks  # noqa: F401
    from parcours.consent import tasks  # noqa: F401, F811
    from parcours.content import tasks  # noqa: F401, F811
    from parcours.email import tasks  # noqa: F401, F811
    from parcours.meetings import tasks  # noqa: F401, F811


def run_one() -> int:
    """Claim and perform one due job (or one batch); how many jobs, 0 when none was due."""
    _load_handlers()
    job = _claim()
    if job is None:
        return 0
    fn = HANDLERS.get(job.kind)
    if fn is None:
        _finish(job, f"no handler for {job.kind}", retry=False)
        return 1
    if job.kind in BATCHES:
        batch = [job, *_claim_more(job, BATCHES[job.kind] - 1)]
        _run_batch(fn, batch)
        return len(batch)
    try:
        fn(job.payload)
    except Exception as exc:  # a failed job is recorded, never lost, never crashes the worker
        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        _finish(job, detail[:2000], retry=job.attempts < MAX_ATTEMPTS and _retryable(exc))
    else:
        _finish(job, None, retry=False)
    return 1


def _run_batch(fn: Callable, batch: list[Job]) -> None:
    try:
        outcomes = fn(batch)
    except Exception as exc:  # the whole batch failed: each job as if it had raised
        outcomes = [exc] * len(batch)
    done, released = [], []
    for job, outcome in zip(batch, outcomes, strict=True):
        if outcome is None:
            done.append(job)
            continue
        if isinstance(outcome, Release):
            released.append(job)
            continue
        log.warning("job %s (%s) failed: %s", job.id, job.kind, outcome)
        detail = "".join(traceback.format_exception_only(outcome)).strip()
        retry = job.attempts < MAX_ATTEMPTS and _retryable(outcome)
        _finish(job, detail[:2000], retry=retry)
    _finish_done(done)
    _release(released)


def _retryable(exc: Exception) -> bool:
    from parcours.core.errors import DomainError

    return not isinstance(exc, DomainError)  # a refused file stays refused


def run_pending(limit: int | None = 1000) -> int:
    """Perform due jobs until none is left or limit were done (None: no limit)."""
    done = 0
    while (limit is None or done < limit) and (ran := run_one()):
        done += ran
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
