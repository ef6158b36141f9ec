"""Email fixtures: a real SMTP server (aiosmtpd), a migrated database file that workers
share with the tests, a DKIM key, and approved emails queued through the real services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture
def env(settings_env) -> Callable[..., None]:
    """settings_env under a shorter name: env(smtp_port=25), restored afterwards."""
    return settings_env


@pytest.fixture
def file_db(committed_db, env) -> str:
    """The configured database is a fresh migrated SQLite file (committed_db) with the
    sender, public address and no quiet hours (a message queued at night is due now)."""
    env(
        mail_from=MAIL_FROM,
        public_url="https://parcours.lab.example",
        email_quiet_start_h=24,
        email_quiet_end_h=0,
    )
    return committed_db


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
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    return DkimKey(path, factories.rsa_key_files(path))


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
