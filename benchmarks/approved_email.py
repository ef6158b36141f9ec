"""Approved Email throughput: compose with the gates on, then render, DKIM-sign and hand to SMTP.

    python benchmarks/approved_email.py [--messages 2000] [--hcps 2000]

Builds a fresh SQLite file database with HCPs who opted in to email, an approved email
template (uploaded, rendered, signed by three reviewers through the real services), then:

1. queues one message per HCP with `email.service.send` (tokens checked, every gate run:
   template valid, consent, recipient, frequency cap) — messages/s;
2. runs the worker's `email.send` jobs (gates again, MIME build, DKIM signature with a
   2048-bit RSA key, SMTP to a local aiosmtpd server, state and timeline activity) —
   emails/s accepted by the SMTP server. Target: 300/s on 2 cores.

Prints JSON (core count included) and writes benchmarks/results/email-sqlite.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the tests' builders, not this folder's scripts (benchmarks/content.py would shadow them)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results" / "email-sqlite.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
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
    )
    from aiosmtpd.controller import Controller

    from parcours.consent import service as consent
    from parcours.core import audit, db, jobs
    from parcours.core.settings import get_settings
    from parcours.email import service
    from parcours.email.models import EmailMessage

    from content_factories import acting, build_mlr
    from email_factories import PHRASES, approved_email_template
    from factories import migrate

    class Count:
        def __init__(self):
            self.n = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            self.n += 1
            return "250 OK"

    counter = Count()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    os.environ["PARCOURS_SMTP_HOST"], os.environ["PARCOURS_SMTP_PORT"] = "127.0.0.1", str(port)
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
        rep_id, template_id = mlr.rep.id, template.id
        marketing_id = mlr.marketing.id
        campaign_hcps = [consented(session, mlr, text, f"c{i}") for i in range(args.campaign)]

    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    started = time.perf_counter()
    for i in range(0, len(hcp_ids), 100):
        with db.new_session() as session, session.begin():
            from parcours.core.models import User

            rep = session.get(User, rep_id)
            with acting(session, rep):
                for hcp_id in hcp_ids[i : i + 100]:
                    service.send(
                        session, rep, hcp_id, template_id, {"phrase": PHRASES[0], "date": day}
                    )
    compose_s = time.perf_counter() - started

    started = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        prof = cProfile.Profile()
        done = prof.runcall(jobs.run_pending, limit=args.messages + 10)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    else:
        done = jobs.run_pending(limit=args.messages + 10)
    send_s = time.perf_counter() - started
    campaign = {}
    if args.campaign:
        from datetime import date

        from parcours.accounts.models import TargetList, TargetListEntry
        from parcours.core.models import User
        from parcours.email import campaigns

        with db.new_session() as session, session.begin():
            target = TargetList(name="bench", cycle_start=date.today(), cycle_end=date.today())
            session.add(target)
            session.flush()
            session.add_all(
                TargetListEntry(target_list_id=target.id, account_id=h) for h in campaign_hcps
            )
            owner = session.get(User, marketing_id)
            with acting(session, owner):
                started_c = campaigns.start(
                    session, owner, target.id, template_id, {"phrase": PHRASES[0], "date": day}
                )
            campaign_id = started_c.id
        started = time.perf_counter()
        # only the campaign job: its messages' send jobs are measured above, not twice
        from parcours.email.tasks import run_campaign

        run_campaign({"campaign_id": campaign_id})
        campaign_s = time.perf_counter() - started
        with db.new_session() as session:
            from parcours.email.models import Campaign

            c = session.get(Campaign, campaign_id)
            campaign = {
                "campaign_hcps": args.campaign,
                "campaign_queued": c.queued_count,
                "campaign_s": round(campaign_s, 2),
                "campaign_per_s": round(args.campaign / campaign_s, 1),
                "campaign_100k_estimate_min": round(100_000 / (args.campaign / campaign_s) / 60, 1),
            }
    controller.stop()
    with db.new_session() as session:
        from sqlalchemy import func, select

        sent = session.scalar(
            select(func.count()).select_from(EmailMessage).where(EmailMessage.state == "sent")
        )
    result = {
        "benchmark": "email",
        "backend": "sqlite",
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "at": datetime.now().isoformat(timespec="minutes"),
        "messages": args.messages,
        "queued_per_s": round(args.messages / compose_s, 1),
        "jobs_run": done,
        "sent": sent,
        "smtp_received": counter.n,
        "sent_per_s": round(counter.n / send_s, 1),
        "target_sent_per_s": 300,
        "dkim": True,
        **campaign,
        "notes": "queue: tokens + gates + compose + job row per message, 100 per transaction; "
        "send: one worker thread, gates again, MIME + DKIM (RSA 2048) + one SMTP "
        "connection per message to a local aiosmtpd, state + timeline activity.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


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
