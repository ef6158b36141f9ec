"""Background work of consent: the double opt-in confirmation email."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime

from sqlalchemy import select

from parcours.accounts.models import Account
from parcours.consent import service
from parcours.consent.models import ConsentRecord, ConsentText
from parcours.core import jobs, mailer
from parcours.core.db import new_session
from parcours.core.settings import get_settings

log = logging.getLogger("parcours.consent")

WORDING = {
    "fr": {
        "subject": "Confirmez votre consentement",
        "greeting": "Bonjour {name},",
        "intro": "Vous avez accepté de recevoir nos communications par email. "
        "Pour confirmer, ouvrez ce lien :",
        "text": "Le texte que vous avez accepté :",
        "ignore": "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : "
        "rien ne sera enregistré.",
        "button": "Je confirme",
    },
    "en": {
        "subject": "Please confirm your consent",
        "greeting": "Hello {name},",
        "intro": "You agreed to receive our communications by email. To confirm, open this link:",
        "text": "The text you agreed to:",
        "ignore": "If you did not ask for this, ignore this message: nothing will be recorded.",
        "button": "I confirm",
    },
}


def confirmation_link(record_id: int) -> str:
    base = get_settings().public_url.rstrip("/")
    return f"{base}/consent/confirm/{service.confirm_token(record_id)}"


@jobs.handler("consent.confirmation")
def send_confirmation(payload: dict) -> None:
    """Email the HCP the link that turns a pending opt-in into a valid one."""
    record_id = int(payload["record_id"])
    # read only: the SMTP exchange must not hold the database's write lock
    with new_session(write=False) as session:
        record = session.get(ConsentRecord, record_id)
        if record is None or record.status != "pending" or not record.email:
            return
        confirmed = session.scalar(
            select(ConsentRecord.id).where(ConsentRecord.confirms_id == record_id).limit(1)
        )
        captured_at = record.captured_at
        if captured_at.tzinfo is None:
            captured_at = captured_at.replace(tzinfo=UTC)
        if confirmed is not None or captured_at + service.CONFIRM_WITHIN < datetime.now(UTC):
            return
        account = session.get(Account, record.account_id)
        if account is None or account.status == "erased":
            return
        text = session.get(ConsentText, record.text_id) if record.text_id else None
        language = account.preferred_language if account.preferred_language in WORDING else "fr"
        name = " ".join(p for p in (account.title, account.last_name) if p) or ""
        message = _message(record.email, language, name, text.body if text else None, record_id)
    message_id = mailer.send(message)
    log.info("consent confirmation for record %s sent as %s", record_id, message_id)


def _message(to: str, language: str, name: str, body: str | None, record_id: int):
    words = WORDING[language]
    link = confirmation_link(record_id)
    greeting = words["greeting"].format(name=name).replace(" ,", ",")
    lines = [greeting, "", words["intro"], link, ""]
    if body:
        lines += [words["text"], "", body, ""]
    lines.append(words["ignore"])
    parts = [
        f"<p>{html.escape(greeting)}</p>",
        f"<p>{html.escape(words['intro'])}</p>",
        f'<p><a href="{html.escape(link)}">{html.escape(words["button"])}</a></p>',
    ]
    if body:
        parts.append(f"<p>{html.escape(words['text'])}</p>")
        parts.append(f"<blockquote>{html.escape(body)}</blockquote>")
    parts.append(f"<p>{html.escape(words['ignore'])}</p>")
    page = f'<!doctype html><html lang="{language}"><body>{"".join(parts)}</body></html>'
    return mailer.build(
        to,
        words["subject"],
        "\n".join(lines) + "\n",
        html=page,
        headers={"Content-Language": language, "Auto-Submitted": "auto-generated"},
    )
