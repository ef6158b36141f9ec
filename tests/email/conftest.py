"""Email fixtures: a real SMTP server (aiosmtpd), a migrated database file that workers
share with the tests, a DKIM key, and approved emails queued through the real services."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from parcours.accounts.models import Territory
from parcours.consent import service as consent
from parcours.content.models import ContentVersion
from parcours.core import db, jobs
from parcours.core.models import User
from parcours.email import service
from parcours.email.models import EmailMessage

import factories
from content_factories import MLR, acting, build_mlr
from email_factories import PHRASES, approved_email_template

MAIL_FROM = "Laboratoire Parcours <no-reply@lab.example>"
DKIM_DOMAIN = "lab.example"
DKIM_SELECTOR = "parcours2025"
SIMPLE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Update</title></head>
<body>
<p>Dear {{ recipient_title }} {{ recipient_name }},</p>
<p>{{ phrase }}</p>
<p>{{ rep_signature }}</p>
<p><a href="{{ unsubscribe_link }}">Unsubscribe</a></p>
</body></html>
"""


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(settings_env) -> Callable[..., None]:
    """settings_env under a shorter name: env(smtp_port=25), restored afterwards."""
    return settings_env


@pytest.fixture
def smtp_server(env) -> Iterator[Received]:
    """An SMTP server on a free local port; the mailer settings point at it."""
    received = Received("127.0.0.1", free_port())
    controller = Controller(received, hostname=received.host, port=received.port)
    controller.start()
    env(smtp_host=received.host, smtp_port=received.port, smtp_timeout_s=5)
    try:
        yield received
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def migrated_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("email-template") / "template.db"
    factories.migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def file_db(migrated_file, tmp_path, env) -> Iterator[str]:
    """The configured database is a fresh migrated SQLite file; workers commit there.

    Quiet hours are off (start 24, end 0) so that a message queued at night is due now.
    """
    path = tmp_path / "email.db"
    shutil.copy(migrated_file, path)
    url = f"sqlite:///{path}"
    env(
        database_url=url,
        secret_key="test-secret-key",
        mail_from=MAIL_FROM,
        public_url="https://parcours.lab.example",
        email_quiet_start_h=24,
        email_quiet_end_h=0,
    )
    db.reset()
    yield url
    db.reset()


@dataclass
class DkimKey:
    path: Path
    public_b64: str

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes:
        """The TXT record a receiver would find for our selector, and nothing else."""
        if name.decode().rstrip(".") == f"{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}":
            return f"v=DKIM1; k=rsa; p={self.public_b64}".encode()
        return b""


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory) -> DkimKey:
    folder = tmp_path_factory.mktemp("dkim")
    path = folder / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(path), "2048"],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return DkimKey(path, base64.b64encode(der).decode())


@pytest.fixture
def dkim_key(rsa_key, env) -> DkimKey:
    """DKIM signing configured with a fresh RSA key; verify with its dnsfunc."""
    env(dkim_key_path=rsa_key.path, dkim_domain=DKIM_DOMAIN, dkim_selector=DKIM_SELECTOR)
    return rsa_key


@dataclass
class Scene:
    """A committed world in the file database: the MLR team, an approved email template."""

    mlr: MLR
    template_id: int

    def hcp(self, *, consent_to_email: bool = True) -> int:
        """A new HCP in the rep's territory, opted in to email unless told otherwise."""
        with db.new_session() as session, session.begin():
            rep = session.get(User, self.mlr.rep.id)
            hcp = factories.create_hcp(session, session.get(Territory, self.mlr.territory.id))
            if consent_to_email:
                with acting(session, rep):
                    text = consent.add_text(
                        session,
                        session.get(User, self.mlr.marketing.id),
                        f"email-{hcp.id}",
                        "en",
                        "I agree to receive information from the lab by email.",
                    )
                    consent.capture(
                        session,
                        rep,
                        hcp.id,
                        channel="email",
                        status="opted_in",
                        source="web_form",
                        text_id=text.id,
                    )
            return hcp.id

    def queue(self, account_id: int, phrase: str = PHRASES[0]) -> EmailMessage:
        """An approved email queued by the rep through the real service, committed."""
        with db.new_session() as session, session.begin():
            rep = session.get(User, self.mlr.rep.id)
            with acting(session, rep):
                return service.send(session, rep, account_id, self.template_id, {"phrase": phrase})

    def message(self, message_id: int) -> EmailMessage:
        with db.new_session(write=False) as session:
            return session.get(EmailMessage, message_id)

    def template(self) -> ContentVersion:
        with db.new_session(write=False) as session:
            return session.get(ContentVersion, self.template_id)


@pytest.fixture
def scene(file_db) -> Scene:
    with db.new_session() as session, session.begin():
        team = build_mlr(session)
        template = approved_email_template(session, team, html=SIMPLE_TEMPLATE)
    jobs.run_pending()  # the upload's own render job: later counts are emails only
    return Scene(team, template.id)
