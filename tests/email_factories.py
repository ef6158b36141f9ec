"""Email test builders: a real template file, an approved template made by the services, and
the delivery status report an MTA sends back."""

from __future__ import annotations

import tempfile
from email.message import EmailMessage as MimeMessage
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from sqlalchemy.orm import Session

from parcours.content.models import ContentVersion
from parcours.email import tasks

from content_factories import MLR, acting, approve, upload_version

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invitation</title></head>
<body style="font-family: sans-serif">
<p>Dear {{ recipient_title }} {{ recipient_name }},</p>
<p>{{ phrase }}</p>
<p>I would be glad to meet you on {{ date }}. The approved material:
<a href="{{ content_link }}">read it here</a>.</p>
<p>{{ rep_signature }}</p>
<p style="font-size: 12px"><a href="{{ unsubscribe_link }}">Unsubscribe</a></p>
</body></html>
"""
PHRASES = ["Our new data on renal protection may interest you.", "A short update on dosing."]


def opt_in_to_email(session: Session, mlr: MLR, address: str) -> None:
    """The MLR scene's HCP gets this address and opts in to email, captured by the rep."""
    from parcours.consent import service as consent

    mlr.hcp.emails = [address]
    text = consent.add_text(
        session, mlr.marketing, "email-optin", "en", "I agree to receive emails from the lab."
    )
    with acting(session, mlr.rep):
        consent.capture(
            session,
            mlr.rep,
            mlr.hcp.id,
            channel="email",
            status="opted_in",
            source="web_form",
            text_id=text.id,
        )


def make_template(path: Path, html: str = TEMPLATE) -> Path:
    path.write_text(html, encoding="utf-8")
    return path


def approved_email_template(
    session: Session, mlr: MLR, *, html: str = TEMPLATE, **meta
) -> ContentVersion:
    """An email template uploaded, rendered, reviewed and signed through the real services."""
    folder = Path(tempfile.mkdtemp())
    path = make_template(folder / "invitation.html", html)
    meta.setdefault("key_messages", PHRASES)
    meta.setdefault("title", "Invitation to a meeting")
    version = upload_version(session, mlr, file=path, filename="invitation.html", **meta)
    return approve(session, mlr, version)


def dsn(
    key: str,
    recipient: str = "anne.martin@chu-lille.fr",
    action: str = "failed",
    status: str = "5.1.1",
    headers_only: bool = False,
) -> bytes:
    """A real RFC 3464 report, as an MTA would send it back."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.chu-lille.fr>"
    report["To"] = "no-reply@lab.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("Your message could not be delivered.\n"))
    per_message = MimeMessage()
    per_message["Reporting-MTA"] = "dns; mx.chu-lille.fr"
    per_recipient = MimeMessage()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; 550 {status} No such user here"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    original = MimeMessage()
    original["From"] = "Laboratoire Parcours <no-reply@lab.example>"
    original["To"] = recipient
    original["Subject"] = "Update"
    original["Message-ID"] = tasks.message_id(key)
    if headers_only:
        part = MIMEText(original.as_string(), "rfc822-headers")
    else:
        original.set_content("Dear Dr Martin,\n")
        part = MIMEMessage(original)
    report.attach(part)
    return report.as_bytes()
