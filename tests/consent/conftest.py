"""Consent fixtures: a real SMTP server (aiosmtpd) and a migrated database file for workers."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from parcours.core import db
from parcours.core.settings import get_settings

import factories


@dataclass
class Received:
    """What the SMTP server accepted: envelopes and the messages parsed back."""

    host: str
    port: int
    envelopes: list = field(default_factory=list)

    @property
    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(env.original_content, policy=policy.default)
            for env in self.envelopes
        ]

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()


@pytest.fixture
def smtp_server() -> Iterator[Received]:
    """An SMTP server on a free local port; the mailer settings point at it."""
    received = Received("127.0.0.1", free_port())
    controller = Controller(received, hostname=received.host, port=received.port)
    controller.start()
    saved = _set_env(
        {
            "PARCOURS_SMTP_HOST": received.host,
            "PARCOURS_SMTP_PORT": str(received.port),
            "PARCOURS_SMTP_TIMEOUT_S": "5",
        }
    )
    try:
        yield received
    finally:
        controller.stop()
        _restore_env(saved)


@pytest.fixture(scope="module")
def migrated_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("consent-template") / "template.db"
    factories.migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def file_db(migrated_file, tmp_path) -> Iterator[str]:
    """The configured database is a fresh migrated SQLite file; workers commit there."""
    path = tmp_path / "consent.db"
    shutil.copy(migrated_file, path)
    url = f"sqlite:///{path}"
    saved = _set_env({"PARCOURS_DATABASE_URL": url, "PARCOURS_SECRET_KEY": "test-secret-key"})
    db.reset()
    yield url
    _restore_env(saved)
    db.reset()
