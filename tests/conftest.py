"""Test fixtures: a migrated database per backend, a rolled-back transaction per test."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from parcours.accounts.service import clear_scope_cache
from parcours.core import audit
from parcours.core.db import make_engine

from factories import ROOT, migrate  # noqa: F401  (re-exported for tests)

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
