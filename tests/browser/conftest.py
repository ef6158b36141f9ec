"""A live server on a fresh SQLite file and headless Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session

from parcours.core.db import make_engine

from factories import (
    ROOT,
    create_hcp,
    create_product,
    create_territory_tree,
    create_user,
    free_port,
    migrate,
    rsa_key_files,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # a camera and a microphone that film and hear test patterns, granted without asking
    # (the meeting room's WebRTC); nothing else uses them
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def live_world(tmp_path_factory):
    """A migrated SQLite file with a rep, a territory, HCPs and a product."""
    path = tmp_path_factory.mktemp("live") / "live.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_engine(url)
    with Session(engine) as s:
        tree = create_territory_tree(s)
        rep = create_user(
            s,
            "rep",
            email="rep.live@example.test",
            full_name="Camille Rep",
            language="en",
            territories=[tree["north1"]],
        )
        hcp = create_hcp(
            s, tree["north1"], last_name="Dupont", first_name="Marie", specialty="Cardiology"
        )
        create_hcp(s, tree["north1"], last_name="Durand", first_name="Paul")
        outsider = create_hcp(s, tree["south1"], last_name="Lointain", first_name="Zoé")
        product = create_product(s, "Vaxelor")
        s.commit()
        world = {
            "url": url,
            "rep_email": rep.email,
            "hcp_id": hcp.id,
            "outsider_id": outsider.id,
            "product": product.name,
        }
    engine.dispose()
    return world


class LiveMailbox:
    """What the live SMTP server accepted (aiosmtpd handler): envelopes, in order."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def raw_to(self, address: str) -> list[bytes]:
        return [e.original_content for e in self.envelopes if address in e.rcpt_tos]


@pytest.fixture(scope="session")
def live_smtp():
    """An SMTP server for the live worker, started before the live server."""
    mailbox = LiveMailbox("127.0.0.1", free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


DKIM_DOMAIN, DKIM_SELECTOR = "lab.example", "live"


@pytest.fixture(scope="session")
def live_dkim(tmp_path_factory) -> dict | None:
    """A DKIM key the live worker signs with: {path, domain, selector, public_b64}."""
    if shutil.which("openssl") is None:
        return None
    path = tmp_path_factory.mktemp("live-dkim") / "dkim.pem"
    public = rsa_key_files(path)
    return {"path": path, "domain": DKIM_DOMAIN, "selector": DKIM_SELECTOR, "public_b64": public}


@pytest.fixture(scope="session")
def live_server(live_world, live_smtp, live_dkim):
    port = free_port()
    db_file = Path(live_world["url"].split("///")[1])
    env = {
        **os.environ,
        "PARCOURS_DATABASE_URL": live_world["url"],
        "PARCOURS_SECRET_KEY": "browser-test-secret",
        # uploads land next to the database; a worker process renders them
        "PARCOURS_CONTENT_DIR": str(db_file.parent / "content"),
        # insight files and search indexes of their own, shared by the server and the worker
        "PARCOURS_INSIGHT_DIR": str(db_file.parent / "insight"),
        "PARCOURS_WORKER_POLL_S": "0.3",
        # the KPI snapshot, refreshed often so a dashboard shows what a test just did
        "PARCOURS_ANALYTICS_DIR": str(db_file.parent / "analytics"),
        "PARCOURS_ANALYTICS_REFRESH_S": "2",
        # the worker's mail goes to the test SMTP server; links point at this server
        "PARCOURS_SMTP_HOST": live_smtp.host,
        "PARCOURS_SMTP_PORT": str(live_smtp.port),
        "PARCOURS_SMTP_TIMEOUT_S": "5",
        "PARCOURS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PARCOURS_MAIL_FROM": f"Laboratoire Parcours <no-reply@{DKIM_DOMAIN}>",
        # no quiet hours: an email queued by a test at night is due at once
        "PARCOURS_EMAIL_QUIET_START_H": "24",
        "PARCOURS_EMAIL_QUIET_END_H": "0",
    }
    if live_dkim:
        env.update(
            PARCOURS_DKIM_KEY_PATH=str(live_dkim["path"]),
            PARCOURS_DKIM_DOMAIN=live_dkim["domain"],
            PARCOURS_DKIM_SELECTOR=live_dkim["selector"],
        )
    log = open(db_file.with_suffix(".log"), "w")  # noqa: SIM115
    worker_log = open(db_file.with_suffix(".worker.log"), "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "parcours.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "parcours.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        worker.kill()
        pytest.fail("the live server did not start")
    yield {**live_world, "base": base}
    for p in (proc, worker):
        p.terminate()
        p.wait(10)
    log.close()
    worker_log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def clm_world(live_server):
    """For the CLM acceptance test: marketing, the three MLR reviewers, a product and a call
    the live rep planned with Dr Dupont half an hour ago, written in the live SQLite file."""
    from datetime import UTC, datetime, timedelta

    from parcours.activities import service as activities
    from parcours.core import audit
    from parcours.core.models import User

    engine = make_engine(live_server["url"])
    with Session(engine) as s:
        audit.bind_actor(s, None, "test")
        marketing = create_user(s, "marketing", full_name="Marie Marketing", language="en")
        reviewers = [
            create_user(s, "reviewer", review_role=role, full_name=f"{role.title()} Reviewer")
            for role in ("medical", "legal", "regulatory")
        ]
        product = create_product(s, "Cardiozen")
        rep = s.query(User).filter_by(email=live_server["rep_email"]).one()
        rep.country = "FR"  # content is offered by market: the deck is uploaded for France
        call = activities.create_activity(
            s,
            rep,
            account_ids=[live_server["hcp_id"]],
            channel="field_visit",
            start_at=datetime.now(UTC) - timedelta(minutes=30),
        )
        s.commit()
        world = {
            "marketing_email": marketing.email,
            "reviewer_emails": [r.email for r in reviewers],
            "product": product.name,
            "call_id": call.id,
        }
    engine.dispose()
    return world
