"""Outgoing email: build a message and hand it to the configured SMTP server (aiosmtplib)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from parcours.core.settings import get_settings


def build(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A message from the configured sender: plain text, plus an HTML alternative when given."""
    settings = get_settings()
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "parcours.local"
    msg["Message-ID"] = make_msgid(domain=domain)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")  # makes it multipart/alternative
    return msg


def send(message: EmailMessage) -> str:
    """Send through SMTP and return the Message-ID; raises when the server refuses or is away."""
    settings = get_settings()
    if not message["Message-ID"]:
        message["Message-ID"] = make_msgid(domain="parcours.local")
    if not message["Date"]:
        message["Date"] = formatdate(localtime=False, usegmt=True)
    if not message["From"]:
        message["From"] = settings.mail_from
    run(lambda: aiosmtplib.send(message, **_server(settings)))
    return str(message["Message-ID"])


def send_raw(raw: bytes, sender: str, recipients: list[str]) -> None:
    """Send bytes exactly as given (a DKIM-signed message must not be re-serialised)."""
    settings = get_settings()
    run(lambda: aiosmtplib.send(raw, sender=sender, recipients=recipients, **_server(settings)))


def _server(settings) -> dict:
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "username": settings.smtp_user or None,
        "password": settings.smtp_password or None,
        "use_tls": settings.smtp_tls,
        "start_tls": settings.smtp_starttls,
        "timeout": settings.smtp_timeout_s,
    }


def run(make_coroutine):
    """Run an SMTP coroutine from synchronous code (the worker), whatever the thread holds.

    A thread may already run an event loop (a test tool, an embedding app): asyncio.run is
    refused there, so the coroutine then runs on a short-lived thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()
