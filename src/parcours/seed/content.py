"""Demo content library: MLR reviewers, reps' products, and detailing decks in every state.

Runs after the bulk load, through the real services (upload, render, review, signatures),
so the demo shows what a lab would see: approved decks per product in French and English,
one waiting for legal and regulatory review, one draft, one expired, and an approved
email invitation per language.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import date, timedelta
from pathlib import Path

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from parcours.accounts.models import Product, UserProduct
from parcours.core import audit
from parcours.core.models import Role, User
from parcours.core.security import hash_password
from parcours.seed.reference import PRODUCTS

DEMO_DOMAIN = "parcours.demo"
REVIEWERS = (
    ("reviewer", "medical", "Dr Hélène Marchand"),
    ("reviewer.legal", "legal", "Maître Antoine Roussel"),
    ("reviewer.regulatory", "regulatory", "Claire Fontaine, PharmD"),
)
SLIDES = {
    "fr": ("Pourquoi {brand} ?", "Message clé", "Données cliniques", "Posologie", "Résumé"),
    "en": ("Why {brand}?", "Key message", "Clinical data", "Dosing", "Summary"),
}
EMAIL_TITLES = {"fr": "{brand} — invitation à un rendez-vous", "en": "{brand} — meeting invitation"}
EMAIL_TEMPLATES = {
    "fr": """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>Invitation</title></head>
<body style="font-family: Arial, sans-serif; color: #1e293b; max-width: 560px">
<p>Bonjour {{ recipient_title }} {{ recipient_name }},</p>
<p>{{ phrase }}</p>
<p>Je vous propose de nous rencontrer le {{ date }}. Vous trouverez le support approuvé ici :
<a href="{{ content_link }}">consulter la présentation</a>.</p>
<p>Bien cordialement,<br>{{ rep_signature }}</p>
<p style="font-size: 12px; color: #64748b">Matériel promotionnel approuvé.
<a href="{{ unsubscribe_link }}">Se désinscrire</a></p>
</body></html>
""",
    "en": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invitation</title></head>
<body style="font-family: Arial, sans-serif; color: #1e293b; max-width: 560px">
<p>Dear {{ recipient_title }} {{ recipient_name }},</p>
<p>{{ phrase }}</p>
<p>Could we meet on {{ date }}? The approved material is here:
<a href="{{ content_link }}">read the presentation</a>.</p>
<p>Kind regards,<br>{{ rep_signature }}</p>
<p style="font-size: 12px; color: #64748b">Approved promotional material.
<a href="{{ unsubscribe_link }}">Unsubscribe</a></p>
</body></html>
""",
}
MEETING_TITLES = {
    "fr": "{brand} — invitation à une visite à distance",
    "en": "{brand} — remote meeting invitation",
}
MEETING_TEMPLATES = {
    "fr": """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>Visite à distance</title></head>
<body style="font-family: Arial, sans-serif; color: #1e293b; max-width: 560px">
<p>Bonjour {{ recipient_title }} {{ recipient_name }},</p>
<p>Je vous propose une visite à distance de 15 minutes le {{ meeting_time }}.</p>
<p>Votre lien personnel : <a href="{{ meeting_link }}">rejoindre le rendez-vous</a><br>
Votre code : <b>{{ meeting_passcode }}</b></p>
<p>Aucun logiciel à installer : le rendez-vous s'ouvre dans votre navigateur.</p>
<p>Bien cordialement,<br>{{ rep_signature }}</p>
<p style="font-size: 12px; color: #64748b"><a href="{{ unsubscribe_link }}">Se désinscrire</a></p>
</body></html>
""",
    "en": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Remote meeting</title></head>
<body style="font-family: Arial, sans-serif; color: #1e293b; max-width: 560px">
<p>Dear {{ recipient_title }} {{ recipient_name }},</p>
<p>I would like to offer you a 15-minute remote meeting on {{ meeting_time }}.</p>
<p>Your personal link: <a href="{{ meeting_link }}">join the meeting</a><br>
Your passcode: <b>{{ meeting_passcode }}</b></p>
<p>Nothing to install: the meeting opens in your browser.</p>
<p>Kind regards,<br>{{ rep_signature }}</p>
<p style="font-size: 12px; color: #64748b"><a href="{{ unsubscribe_link }}">Unsubscribe</a></p>
</body></html>
""",
}
COLOURS = (
    (29, 78, 216),
    (5, 150, 105),
    (190, 18, 60),
    (124, 58, 237),
    (202, 138, 4),
    (14, 116, 144),
)


def deck(path: Path, brand: str, area: str, messages: tuple[str, ...], lang: str, n: int) -> Path:
    """A landscape detailing deck: a title slide, one slide per key message, a summary."""
    titles = SLIDES[lang]
    colour = COLOURS[n % len(COLOURS)]
    pdf = FPDF(orientation="L", format=(180, 320))
    pdf.set_auto_page_break(False)

    def slide(heading: str, body: list[str], big: bool = False) -> None:
        pdf.add_page()
        pdf.set_fill_color(*colour)
        pdf.rect(0, 0, 320, 34 if not big else 180, style="F")
        pdf.set_text_color(255, 255, 255)
        pdf.set_font("Helvetica", "B", 30 if big else 22)
        pdf.set_xy(16, 60 if big else 10)
        pdf.cell(text=heading)
        pdf.set_text_color(255, 255, 255) if big else pdf.set_text_color(30, 41, 59)
        pdf.set_font("Helvetica", size=18)
        y = 84 if big else 52
        for line in body:
            pdf.set_xy(20, y)
            pdf.multi_cell(280, 10, text=line)
            y = pdf.get_y() + 6
        pdf.set_text_color(100, 116, 139) if not big else None
        pdf.set_font("Helvetica", size=9)
        pdf.set_xy(16, 168)
        pdf.cell(text=f"{brand} - {area} - demo material, not for real use - {pdf.page_no()}")

    slide(brand, [area, titles[0].format(brand=brand)], big=True)
    for i, message in enumerate(messages):
        slide(f"{titles[1]} {i + 1}", [message, f"{titles[2]}: {brand} vs. standard of care."])
    slide(titles[3], ["1 x / day" if lang == "en" else "1 x / jour"])
    slide(titles[4], list(messages))
    pdf.output(str(path))
    return path


def run(engine: Engine, password: str, today: date | None = None) -> dict:
    """Add reviewers, reps' products and demo decks; renders through the real converters."""
    from parcours.content import review, service, tasks

    today = today or date.today()
    made = {"approved": 0, "in_review": 0, "draft": 0, "expired": 0}
    with tempfile.TemporaryDirectory() as tmp, Session(engine) as session:
        audit.bind_actor(session, None, "seed")
        hashed = hash_password(password)
        reviewers = []
        for local, role, name in REVIEWERS:
            email = f"{local}@{DEMO_DOMAIN}"
            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                user = User(
                    email=email,
                    full_name=name,
                    role=Role.reviewer,
                    language="fr",
                    country="FR",
                    password_hash=hashed,
                )
                session.add(user)
            user.review_role = role
            user.full_name = name
            reviewers.append(user)
        products = {p.code: p for p in session.scalars(select(Product))}
        for rep in session.scalars(select(User).where(User.role == Role.rep)):
            for p in products.values():
                session.add(UserProduct(user_id=rep.id, product_id=p.id))
        marketing = session.scalar(select(User).where(User.email == f"marketing@{DEMO_DOMAIN}"))
        session.flush()

        def build(code, brand, area, messages, lang, countries, n, state):
            path = deck(Path(tmp) / f"{code}-{lang}.pdf", brand, area, messages, lang, n)
            title = f"{brand} — {'présentation visite' if lang == 'fr' else 'detailing deck'}"
            if state == "expired":
                title += " (2025)"
            if state == "expired":
                # approved for a campaign that ended: expired by the worker's duty below
                valid = (today - timedelta(days=200), today)
            else:
                valid = (today - timedelta(days=30), today + timedelta(days=335))
            version = service.upload(
                session,
                marketing,
                path,
                path.name,
                {
                    "title": title,
                    "content_type": "promotional",
                    "language": lang,
                    "countries": countries,
                    "product_ids": [products[code].id],
                    "key_messages": list(messages),
                    "valid_from": valid[0],
                    "valid_until": valid[1],
                    "description": f"{area}: {len(messages)} key messages.",
                },
            )
            tasks.render_with(session, version.id)
            for page in service.pages(session, version.id)[1 : 1 + len(messages)]:
                page.key_messages = [messages[page.number - 2]]
            session.flush()
            if state == "draft":
                return
            service.submit_for_review(session, marketing, version.id)
            signers = reviewers[:1] if state == "in_review" else reviewers
            for reviewer in signers:
                review.sign(session, reviewer, version.id, password=password, decision="approved")
            if state == "expired":
                review.expire_due(session, today + timedelta(days=1))

        for n, (code, brand, area, messages) in enumerate(PRODUCTS[:4]):
            if code not in products:
                continue
            build(code, brand, area, messages, "fr", ["FR"], n, "approved")
            build(code, brand, area, messages, "en", ["DE", "ES", "GB", "IT"], n, "approved")
            made["approved"] += 2
        for n, (i, state) in enumerate(((4, "in_review"), (5, "draft"), (0, "expired"))):
            code, brand, area, messages = PRODUCTS[i]
            if code in products:
                build(code, brand, area, messages, "fr", ["FR"], n + 4, state)
                made[state] += 1
        # an approved email invitation per language, for Approved Email from HCP 360, and a
        # remote meeting invitation per language, sent when a meeting is planned
        kinds = (("invitation", EMAIL_TEMPLATES, EMAIL_TITLES, "promotional"),)
        kinds += (("meeting", MEETING_TEMPLATES, MEETING_TITLES, "medical"),)
        for (name, bodies, titles, ctype), (lang, countries) in itertools.product(
            kinds, (("fr", ["FR"]), ("en", ["DE", "ES", "GB", "IT"]))
        ):
            code, brand, _area, messages = PRODUCTS[0]
            if code not in products:
                continue
            path = Path(tmp) / f"{name}-{lang}.html"
            path.write_text(bodies[lang], encoding="utf-8")
            version = service.upload(
                session,
                marketing,
                path,
                path.name,
                {
                    "title": titles[lang].format(brand=brand),
                    "content_type": ctype,
                    "language": lang,
                    "countries": countries,
                    "product_ids": [products[code].id],
                    "key_messages": list(messages[:3]),
                    "valid_from": today - timedelta(days=30),
                    "valid_until": today + timedelta(days=335),
                },
            )
            tasks.render_with(session, version.id)
            service.submit_for_review(session, marketing, version.id)
            for reviewer in reviewers:
                review.sign(session, reviewer, version.id, password=password, decision="approved")
            made["email"] = made.get("email", 0) + 1
        session.commit()
    return made
