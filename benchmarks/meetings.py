"""Meeting rooms on one node: signalling and slide sync under many concurrent meetings.

    python benchmarks/meetings.py [--meetings 500] [--rounds 5] [--out FILE]

Builds a fresh SQLite file with a rep, HCPs who agreed to remote meetings and an approved
two-page deck (uploaded, reviewed and signed through the real services), schedules
--meetings meetings of 2 to 4 people (the rep and 1 to 3 HCPs, in turn), starts
`parcours` (uvicorn, one process, as `parcours serve` runs it) and then, from one client
process with the `websockets` library:

1. every host and every HCP connects its WebSocket; the host admits each HCP: join to
   admitted (the HCP's socket opened → "admitted" received), p50/p99;
2. all meetings held at once, --rounds times every host shows the next slide, the hosts
   in turn over --spread seconds (5: 100 changes a second for 500 meetings, where a real
   15-minute call changes slide every 20 to 60 s): slide propagation (host sends → every
   HCP of that meeting has it), p50/p99, and the server's CPU over the run;
3. everybody leaves;
4. with --browsers N (default 5): N real joins in Chromium (fake camera and microphone),
   one after another, each from the passcode typed to the HCP's peer connection with the
   host `connected` (the host's admit included).

Prints JSON (core count included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results" / "meetings-sqlite.json"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 1) if values else 0.0


def build(meetings: int) -> list[dict]:
    """The world, through the services; each meeting's tickets."""
    from parcours.accounts.models import Territory
    from parcours.core import audit, db
    from parcours.meetings import service

    from content_factories import acting, approved_version, build_mlr
    from factories import consent_to_remote_meetings, create_hcp

    out = []
    with db.new_session() as s, s.begin():
        audit.bind_actor(s, None, "bench")
        mlr = build_mlr(s)
        mlr.rep.country = "FR"
        deck = approved_version(s, mlr, pages=2)
        deck.decided_at = datetime.now(UTC) - timedelta(hours=1)
        territory = s.get(Territory, mlr.territory.id)
        with acting(s, mlr.rep):
            for i in range(meetings):
                guests = [create_hcp(s, territory) for _ in range(1 + i % 3)]
                consent_to_remote_meetings(s, *(h.id for h in guests))
                meeting, codes = service.schedule(
                    s, mlr.rep, account_ids=[h.id for h in guests], starts_at=datetime.now(UTC)
                )
                people = service.attendees(s, meeting.id)
                out.append(
                    {
                        "id": meeting.id,
                        "deck": deck.id,
                        "host": service.ticket("host", meeting.id),
                        "guests": [(a.id, service.ticket(f"a{a.id}", meeting.id)) for a in people],
                        "links": [(service.link_token(a), codes[a.id]) for a in people],
                        "rep": mlr.rep.email,
                    }
                )
    return out


async def run(base: str, plan: list[dict], rounds: int, spread: float) -> dict:
    import websockets

    joins: list[float] = []
    slides: list[float] = []
    sockets = []

    async def until(ws, kind: str) -> dict:
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message

    async def open_meeting(m: dict):
        host = await websockets.connect(f"{base}/ws/meetings/{m['id']}?ticket={m['host']}")
        await until(host, "roster")
        # as the host page does once a deck is chosen: its full check, ahead of the slides
        await host.send(json.dumps({"type": "prepare", "version_id": m["deck"]}))
        await until(host, "prepared")
        guests = []
        for attendee_id, ticket in m["guests"]:
            started = time.perf_counter()
            ws = await websockets.connect(f"{base}/ws/meetings/{m['id']}?ticket={ticket}")
            await until(ws, "waiting")
            await host.send(json.dumps({"type": "admit", "attendee": attendee_id}))
            await until(ws, "admitted")
            joins.append((time.perf_counter() - started) * 1000)
            guests.append(ws)
        sockets.append(host)
        sockets.extend(guests)
        return host, guests

    # open in waves, as people arrive over a few minutes in real life
    rooms = []
    for start in range(0, len(plan), 50):
        rooms += await asyncio.gather(*(open_meeting(m) for m in plan[start : start + 50]))

    async def change(m: dict, host, guests, page: int):
        waits = [asyncio.create_task(until(g, "slide")) for g in guests]
        await asyncio.sleep(0)
        started = time.perf_counter()
        await host.send(json.dumps({"type": "present", "version_id": m["deck"], "page": page}))
        await asyncio.gather(*waits)
        slides.append((time.perf_counter() - started) * 1000)

    held_from = time.perf_counter()
    for r in range(rounds):
        tasks = []
        for i, (m, (host, guests)) in enumerate(zip(plan, rooms, strict=True)):

            async def later(
                m=m, host=host, guests=guests, delay=spread * i / len(plan), page=1 + r % 2
            ):
                await asyncio.sleep(delay)  # each host in turn, over `spread` seconds
                await change(m, host, guests, page)

            tasks.append(later())
        await asyncio.gather(*tasks)
    held_s = time.perf_counter() - held_from
    for ws in sockets:
        await ws.close()
    return {
        "sockets": len(sockets),
        "join_to_admitted_ms_p50": pct(joins, 0.5),
        "join_to_admitted_ms_p99": pct(joins, 0.99),
        "slide_changes": len(slides),
        "slide_changes_per_s": round(len(slides) / held_s, 1),
        "slide_ms_p50": pct(slides, 0.5),
        "slide_ms_p99": pct(slides, 0.99),
        "held_s": round(held_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--spread", type=float, default=5.0, help="seconds over which every host changes slide"
    )
    parser.add_argument(
        "--browsers", type=int, default=5, help="then time N real WebRTC joins in Chromium"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="parcours-bench-meetings-"))
    os.environ.update(
        PARCOURS_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        PARCOURS_CONTENT_DIR=str(tmp / "content"),
        PARCOURS_SECRET_KEY="bench-secret",
        PARCOURS_EMBEDDED_WORKER="false",
    )
    from parcours.core.settings import get_settings

    from factories import migrate

    get_settings.cache_clear()
    migrate(os.environ["PARCOURS_DATABASE_URL"])
    started = time.perf_counter()
    plan = build(args.meetings)
    build_s = time.perf_counter() - started

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "parcours.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning", "--ws-max-size", "65536"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        cpu_before = _cpu(server.pid)
        wall_before = time.perf_counter()
        measured = asyncio.run(run(f"ws://127.0.0.1:{port}", plan, args.rounds, args.spread))
        cpu_s = _cpu(server.pid) - cpu_before
        wall_s = time.perf_counter() - wall_before
        if args.browsers:
            measured.update(connect_in_chromium(f"http://127.0.0.1:{port}", plan, args.browsers))
    finally:
        server.terminate()
        server.wait(10)
    people = sum(1 + len(m["guests"]) for m in plan)
    result = {
        "benchmark": "meetings",
        "backend": "sqlite",
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "at": datetime.now().isoformat(timespec="minutes"),
        "meetings": args.meetings,
        "participants": people,
        "target_meetings": 500,
        "spread_s": args.spread,
        **measured,
        "target_slide_ms_p99": 150,
        "server_cpu_s": round(cpu_s, 1),
        "server_cpu_share": round(cpu_s / wall_s, 2) if wall_s else None,
        "build_s": round(build_s, 1),
        "notes": "one uvicorn process; client (websockets) in another process on the same "
        "2 cores; a slide is sent at once and the one it replaces recorded in SQLite in "
        "batches, off the way; a version is checked in full "
        "(approved, valid, signatures, country) when the host chooses it and every 10 s.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def connect_in_chromium(base: str, plan: list[dict], n: int) -> dict:
    """Join to connected with real browsers: an HCP's page types its passcode (t0), the host
    admits, until the HCP's peer connection to the host is `connected` (fake camera and
    microphone, loopback). Meetings are taken from the end of the plan, one after another."""
    from playwright.sync_api import sync_playwright

    from factories import PASSWORD

    args = [
        "--no-sandbox",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ]
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for m in plan[-n:]:
            host_ctx, guest_ctx = browser.new_context(), browser.new_context()
            host, guest = host_ctx.new_page(), guest_ctx.new_page()
            host.goto(f"{base}/login")
            host.fill("input[name=email]", m["rep"])
            host.fill("input[name=password]", PASSWORD)
            host.click("button[type=submit]")
            host.wait_for_url(lambda url: "/login" not in url)
            host.goto(f"{base}/meetings/{m['id']}/room")
            token, code = m["links"][0]
            guest.goto(f"{base}/m/{token}")
            guest.fill("input[name=passcode]", code)
            started = time.perf_counter()
            guest.click("button[type=submit]")
            host.locator("#roster [data-action=admit]").first.click()
            guest.wait_for_function(
                "(document.getElementById('room').dataset.peers || '').includes('host:connected')",
                timeout=30_000,
            )
            times.append((time.perf_counter() - started) * 1000)
            host_ctx.close()
            guest_ctx.close()
        browser.close()
    return {
        "browser_joins": len(times),
        "join_to_connected_ms_p50": pct(times, 0.5),
        "join_to_connected_ms_max": round(max(times), 1) if times else 0.0,
    }


def _cpu(pid: int) -> float:
    """user + system seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
