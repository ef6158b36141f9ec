"""Approved Email throughput: compose with the gates on, then render, DKIM-sign and hand to SMTP.

    python benchmarks/approved_email.py [--messages 2000] [--workers 2] [--campaign 100000]

Builds a fresh SQLite file database with HCPs who opted in to email, an approved email
template (uploaded, rendered, signed by three reviewers through the real services), and a
local SMTP server (aiosmtpd) in its own process, as a real mail server would be, then:

1. queues one message per HCP with `email.service.send` (tokens checked, every gate run:
   template valid, consent, recipient, frequency cap) — messages/s;
2. runs `parcours worker --once` in --workers processes (one per core by default): gates
   again per batch, MIME build, DKIM signature (RSA 2048), SMTP over one connection per
   batch, a committed mark per message, timeline activities — emails/s accepted by the
   SMTP server (first to last acceptance; the workers' start-up is reported apart).
   Target: 300/s on 2 cores;
3. with --campaign N: a marketing mass send to a target list of N consented HCPs, queued by
   the campaign job then delivered by the workers — the time from start to last delivery.

Prints JSON (core count included) and writes benchmarks/results/email-sqlite.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the tests' builders, not this folder's scripts (benchmarks/content.py would shadow them)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results" / "email-sqlite.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--campaign", type=int, default=0, help="also mass-send to a target list of N HCPs"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="parcours-bench-email-"))
    key = tmp / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(key), "2048"],
        check=True,
        capture_output=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        PARCOURS_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        PARCOURS_CONTENT_DIR=str(tmp / "content"),
        PARCOURS_SECRET_KEY="bench-secret",
        PARCOURS_DKIM_KEY_PATH=str(key),
        PARCOURS_DKIM_DOMAIN="lab.example",
        PARCOURS_DKIM_SELECTOR="bench",
        PARCOURS_EMAIL_QUIET_START_H="24",  # no quiet hours: measure, don't wait for morning
        PARCOURS_EMAIL_QUIET_END_H="0",
        PARCOURS_EMAIL_CAP_COUNT="1000",
        PARCOURS_SMTP_HOST="127.0.0.1",
        PARCOURS_SMTP_PORT=str(port),
    )
    from parcours.consent import service as consent
    from parcours.core import audit, db
    from parcours.core.models import User
    from parcours.core.settings import get_settings
    from parcours.email import service

    from content_factories import acting, build_mlr
    from email_factories import PHRASES, approved_email_template
    from factories import migrate

    get_settings.cache_clear()
    db.reset()
    migrate(os.environ["PARCOURS_DATABASE_URL"])

    with db.new_session() as session, session.begin():
        audit.bind_actor(session, None, "bench")
        mlr = build_mlr(session)
        template = approved_email_template(session, mlr, html=TEMPLATE)
        text = consent.add_text(
            session, mlr.marketing, "email-optin", "en", "I agree to receive emails from the lab."
        )
        hcp_ids = [consented(session, mlr, text, f"hcp{i}") for i in range(args.messages)]
        rep_id, template_id, text_id = mlr.rep.id, template.id, text.id
        marketing_id = mlr.marketing.id
    campaign_hcps = bulk_consented(args.campaign, text_id) if args.campaign else []

    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    started = time.perf_counter()
    for i in range(0, len(hcp_ids), 100):
        with db.new_session() as session, session.begin():
            rep = session.get(User, rep_id)
            with acting(session, rep):
                for hcp_id in hcp_ids[i : i + 100]:
                    service.send(
                        session, rep, hcp_id, template_id, {"phrase": PHRASES[0], "date": day}
                    )
    compose_s = time.perf_counter() - started

    sink = Sink(port, tmp)
    send = deliver(args.workers, sink)
    result = {
        "benchmark": "email",
        "backend": "sqlite",
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "at": datetime.now().isoformat(timespec="minutes"),
        "messages": args.messages,
        "queued_per_s": round(args.messages / compose_s, 1),
        "workers": args.workers,
        **send,
        "target_sent_per_s": 300,
        "dkim": True,
    }
    if args.campaign:
        result.update(mass_send(args, campaign_hcps, marketing_id, template_id, day, port, tmp))
    result["states"] = states()
    result["notes"] = (
        "queue: tokens + gates + compose + job row per message, 100 per transaction; "
        "send: worker processes, gates per batch of 100, MIME + DKIM (RSA 2048, OpenSSL) + "
        "SMTP over one connection per batch to aiosmtpd in its own process, a committed "
        "mark per message, timeline activities every 50."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


class Sink:
    """benchmarks/smtp_sink.py in its own process; stop() returns what it received."""

    def __init__(self, port: int, tmp: Path):
        self.stats = tmp / f"sink-{time.monotonic_ns()}.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "smtp_sink.py"),
                str(port),
                str(self.stats),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return json.loads(self.stats.read_text())


def deliver(workers: int, sink: Sink) -> dict:
    """Run `parcours worker --once` in parallel until the queue is empty (0: in this
    process, profiled when BENCH_PROFILE is set)."""
    started = time.time()
    if workers == 0:
        in_process()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "parcours.cli", "worker", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    codes = [p.wait() for p in procs]
    ended = time.time()
    got = sink.stop()
    span = (got["last"] or ended) - (got["first"] or started)
    return {
        "worker_exit_codes": codes,
        "smtp_received": got["received"],
        "smtp_connections": got["connections"],
        "sent_per_s": round(got["received"] / span, 1) if span > 0 else None,
        "wall_s_with_startup": round(ended - started, 2),
    }


def in_process() -> None:
    from parcours.core import jobs

    if not os.environ.get("BENCH_PROFILE"):
        jobs.run_pending(limit=10**9)
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(jobs.run_pending, limit=10**9)
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(40)


def mass_send(args, hcps, marketing_id, template_id, day, port, tmp) -> dict:
    """A campaign to a target list of every bulk-made HCP: queued by its job, then delivered."""
    from parcours.accounts.models import TargetList, TargetListEntry
    from parcours.core import db
    from parcours.core.models import User
    from parcours.email import campaigns
    from parcours.email.models import Campaign
    from parcours.email.tasks import run_campaign

    from content_factories import acting
    from email_factories import PHRASES

    with db.new_session() as session, session.begin():
        target = TargetList(name="bench", cycle_start=date.today(), cycle_end=date.today())
        session.add(target)
        session.flush()
        session.execute(
            TargetListEntry.__table__.insert(),
            [{"target_list_id": target.id, "account_id": h} for h in hcps],
        )
        owner = session.get(User, marketing_id)
        with acting(session, owner):
            campaign_id = campaigns.start(
                session, owner, target.id, template_id, {"phrase": PHRASES[0], "date": day}
            ).id
    sink = Sink(port, tmp)
    started = time.time()
    run_campaign({"campaign_id": campaign_id})  # what the worker's first job does
    queued_s = time.time() - started
    send = deliver(args.workers, sink)
    total_s = time.time() - started
    with db.new_session() as session:
        c = session.get(Campaign, campaign_id)
        queued = c.queued_count
    return {
        "campaign_hcps": len(hcps),
        "campaign_queued": queued,
        "campaign_queue_s": round(queued_s, 1),
        "campaign_queued_per_s": round(len(hcps) / queued_s, 1),
        "campaign_received": send["smtp_received"],
        "campaign_sent_per_s": send["sent_per_s"],
        "campaign_total_s": round(total_s, 1),
        "campaign_total_min": round(total_s / 60, 1),
    }


def states() -> dict:
    from sqlalchemy import func, select

    from parcours.core import db
    from parcours.email.models import EmailMessage

    with db.new_session() as session:
        return dict(
            session.execute(
                select(EmailMessage.state, func.count()).group_by(EmailMessage.state)
            ).all()
        )


def bulk_consented(n: int, text_id: int) -> list[int]:
    """n HCPs with an email opt-in, written in bulk (the mass send is measured, not this)."""
    from sqlalchemy import insert, select

    from parcours.accounts.models import Account
    from parcours.consent.models import ConsentRecord
    from parcours.core import db

    now = datetime.now(UTC)
    with db.new_session() as session, session.begin():
        first = (session.scalar(select(Account.id).order_by(Account.id.desc()).limit(1)) or 0) + 1
        ids = list(range(first, first + n))
        for start in range(0, n, 5000):
            chunk = ids[start : start + 5000]
            session.execute(
                insert(Account.__table__),
                [
                    {
                        "id": i,
                        "kind": "hcp",
                        "title": "Dr",
                        "first_name": "Claire",
                        "last_name": f"Mass{i}",
                        "specialty": "Cardiology",
                        "profession": "physician",
                        "emails": [f"mass{i}@chu-bench.fr"],
                        "phones": [],
                        "country": "FR",
                        "search_name": f"mass{i} claire",
                        "city": "Lille",
                        "city_key": "lille",
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in chunk
                ],
            )
            session.execute(
                insert(ConsentRecord.__table__),
                [
                    {
                        "account_id": i,
                        "channel": "email",
                        "status": "opted_in",
                        "source": "import",
                        "text_id": text_id,
                        "captured_at": now - timedelta(days=1),
                        "proof": "bench import",
                    }
                    for i in chunk
                ],
            )
    return ids


def consented(session, mlr, text, name: str) -> int:
    """An HCP of the rep's territory with an email address and an email opt-in."""
    from parcours.consent.models import ConsentRecord

    from factories import create_hcp

    hcp = create_hcp(session, mlr.territory, last_name=name)
    hcp.emails = [f"{name}@chu-bench.fr"]
    session.add(
        ConsentRecord(
            account_id=hcp.id,
            channel="email",
            status="opted_in",
            source="import",
            text_id=text.id,
            captured_at=datetime.now(UTC) - timedelta(days=1),
            proof="bench import",
        )
    )
    return hcp.id


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Update</title></head>
<body><p>Dear {{ recipient_title }} {{ recipient_name }},</p><p>{{ phrase }}</p>
<p>Could we meet on {{ date }}?</p><p>{{ rep_signature }}</p>
<p><a href="{{ unsubscribe_link }}">Unsubscribe</a></p></body></html>
"""

if __name__ == "__main__":
    main()
