"""Email test builders: a real template file and an approved template made by the services."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from parcours.content.models import ContentVersion

from content_factories import MLR, approve, upload_version

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
