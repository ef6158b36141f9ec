"""Database engine, declarative base and the session that one request owns."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from parcours.core.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back as aware datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# 64-bit ids on PostgreSQL for the tables that grow without bound; SQLite's INTEGER
# PRIMARY KEY is already 64-bit and must stay spelled INTEGER to be the rowid.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Models with __audited__ = True get an audit record for each create, update, delete.
    __audited__ = False


def utcnow() -> datetime:
    return datetime.now(UTC)


WRITER_WAIT_S = 30


class _WriterQueue:
    """Writers line up here before SQLite's own write lock.

    SQLite's busy handler polls with sleeps of up to 100 ms and is unfair, which made the
    p99 of concurrent writes ten times worse than waiting in line: threads of one process
    wait on a lock, processes sharing the file on an flock beside it. The wait is bounded
    so that a code path holding two write sessions cannot hang: past it, SQLite's busy
    timeout takes over.
    """

    def __init__(self, db_path: str | None):
        self.threads = threading.Lock()
        self.path = f"{db_path}-writelock" if db_path else None
        self.fd: int | None = None

    def acquire(self) -> bool:
        if not self.threads.acquire(timeout=WRITER_WAIT_S):
            return False
        if self.path is None:
            return True
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + WRITER_WAIT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.threads.release()
                    return False
                time.sleep(0.0005)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.threads.release()


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for url; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)

        # pysqlite's own transaction handling defers BEGIN; take it over so
        # SAVEPOINTs and write locks behave (SQLAlchemy docs, "Serializable isolation").
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        queue = _WriterQueue(path if path and path != ":memory:" else None)

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers take the write lock up front: a deferred BEGIN that reads first and
            # writes later fails with SQLITE_BUSY_SNAPSHOT under concurrency.
            immediate = conn.get_execution_options().get("sqlite_immediate")
            if immediate and not conn.info.get("holds_writer_lock"):
                conn.info["holds_writer_lock"] = queue.acquire()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
            except BaseException:
                _release(None, conn.info)
                raise

        def _release(_dbapi_conn, info) -> None:
            if info.pop("holds_writer_lock", False):
                queue.release()

        # Held for the whole checkout (the request's transaction), released when the
        # connection goes back to the pool, whichever thread returns it.
        event.listen(engine, "checkin", lambda dbapi_conn, rec: _release(dbapi_conn, rec.info))
        event.listen(
            engine, "invalidate", lambda dbapi_conn, rec, _exc: _release(dbapi_conn, rec.info)
        )
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def _factory(write: bool) -> sessionmaker[Session]:
    engine = get_engine()
    if write and engine.dialect.name == "sqlite":
        engine = engine.execution_options(sqlite_immediate=True)
    return sessionmaker(bind=engine, expire_on_commit=False)


def new_session(write: bool = True) -> Session:
    """A session; write=True takes SQLite's write lock at the start of each transaction."""
    return _factory(write)()


def write_engine() -> Engine:
    """The engine for short Core writes outside a session (SQLite: write lock at BEGIN)."""
    return _factory(True).kw["bind"]


def reset() -> None:
    """Forget the engine (tests and the CLI switch databases)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _factory.cache_clear()
