"""Test fixtures: a migrated database per backend, a rolled-back transaction per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from parcours.accounts.service import clear_scope_cache
from parcours.core import audit
from parcours.core.db import make_engine
from parcours.core.settings import get_settings

from content_factories import MLR, build_mlr
from factories import ROOT, free_port, migrate  # noqa: F401  (re-exported for tests)

PG_URL = os.environ.get("PARCOURS_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = PG_URL
        reset_postgres(url)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def backend(engine) -> str:
    return engine.dialect.name


@pytest.fixture
def session(engine):
    """A session inside a transaction that is rolled back after the test."""
    conn = engine.connect()
    trans = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    audit.set_actor(None, "test")
    clear_scope_cache()  # ids are reused after each rollback
    yield sess
    sess.close()
    trans.rollback()
    conn.close()


@pytest.fixture
def app(session):
    from parcours.app import create_app
    from parcours.core.deps import get_session

    application = create_app()

    def test_session():
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    application.dependency_overrides[get_session] = test_session
    return application


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def settings_env() -> Iterator[Callable[..., None]]:
    """Set PARCOURS_* variables for one test: settings_env(content_max_bytes=1000).

    Settings are read again at once, and again once the variables are restored.
    """
    saved: dict[str, str | None] = {}

    def set_env(**values) -> None:
        for key, value in values.items():
            name = f"PARCOURS_{key.upper()}"
            saved.setdefault(name, os.environ.get(name))
            os.environ[name] = str(value)
        get_settings.cache_clear()

    yield set_env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def content_dir(tmp_path: Path, settings_env) -> Path:
    """A library folder of its own for each test (autouse: no test writes under var/)."""
    folder = tmp_path / "content"
    folder.mkdir()
    settings_env(content_dir=folder)
    return folder


@pytest.fixture(autouse=True)
def analytics_dir(tmp_path: Path, settings_env) -> Path:
    """A KPI snapshot folder of its own for each test (autouse: no test writes under var/)."""
    folder = tmp_path / "analytics"
    settings_env(analytics_dir=folder)
    return folder


@pytest.fixture(autouse=True)
def insight_dir(tmp_path: Path, settings_env) -> Iterator[Path]:
    """Search indexes and files of their own for each test (autouse: none under var/)."""
    from parcours.ai import index

    folder = tmp_path / "insight"
    settings_env(insight_dir=folder)
    yield folder
    index.forget(folder)


@pytest.fixture
def mlr(session: Session) -> MLR:
    return build_mlr(session)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, made once, copied by committed_db."""
    path = tmp_path_factory.mktemp("committed-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def committed_db(migrated_template, tmp_path, settings_env) -> Iterator[str]:
    """The configured database is a fresh migrated SQLite file where everything commits:
    for code that opens its own sessions (workers, WebSocket rooms) and subprocesses."""
    import shutil

    from parcours.core import db

    path = tmp_path / "committed.db"
    shutil.copy(migrated_template, path)
    url = f"sqlite:///{path}"
    settings_env(database_url=url, secret_key="test-secret-key")
    db.reset()
    yield url
    db.reset()


@dataclass
class Received:
    """What the SMTP server accepted (envelopes, parsed back, and the connection of each).

    Addresses in refuse get a 550 at RCPT, those in defer a 451; a recipient in data_reply
    gets that reply to its DATA instead of being accepted."""

    host: str
    port: int
    envelopes: list = field(default_factory=list)
    peers: list = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    data_reply: dict[str, str] = field(default_factory=dict)

    @property
    def messages(self) -> list[MimeMessage]:
        return [
            message_from_bytes(env.original_content, policy=policy.default)
            for env in self.envelopes
        ]

    @property
    def message_ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        if address.lower() in self.defer:
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        for address in envelope.rcpt_tos:
            if address.lower() in self.data_reply:
                return self.data_reply[address.lower()]
        self.envelopes.append(envelope)
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings_env) -> Iterator[Received]:
    """An SMTP server on a free local port; the mailer settings point at it."""
    received = Received("127.0.0.1", free_port())
    controller = Controller(received, hostname=received.host, port=received.port)
    controller.start()
    settings_env(smtp_host=received.host, smtp_port=received.port, smtp_timeout_s=5)
    try:
        yield received
    finally:
        controller.stop()
