"""A local SMTP server for the email benchmark, in its own process like a real MTA.

    python benchmarks/smtp_sink.py PORT STATS_FILE

Accepts every message (aiosmtpd) and counts them; on SIGTERM writes
{"received", "first", "last", "connections"} (times from time.time()) to STATS_FILE.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self) -> None:
        self.received = 0
        self.first: float | None = None
        self.last: float | None = None
        self.peers: set = set()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.received += 1
        self.peers.add(session.peer)
        return "250 OK"


def main() -> None:
    port, stats = int(sys.argv[1]), sys.argv[2]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    controller.stop()
    with open(stats, "w") as f:
        json.dump(
            {
                "received": sink.received,
                "first": sink.first,
                "last": sink.last,
                "connections": len(sink.peers),
            },
            f,
        )


if __name__ == "__main__":
    main()
