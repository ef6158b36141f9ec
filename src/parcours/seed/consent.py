"""Demo consent: the consent wordings in French and English, and a history for some HCPs.

Written through the real service (as an admin importing a consent file), so every record
has its proof and is on the audit trail: most HCPs opted in to email by an import, a few
opted out, a few wait for their double opt-in confirmation.
"""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from parcours.accounts.models import Account
from parcours.consent import service
from parcours.core import audit
from parcours.core.models import Role, User

TEXTS = {
    "fr": (
        "email-promotional",
        "J'accepte de recevoir par email des informations sur les produits du laboratoire, "
        "de la part de ses délégués. Je peux retirer mon consentement à tout moment par le "
        "lien présent dans chaque message.",
    ),
    "en": (
        "email-promotional",
        "I agree to receive information on the company's products by email from its "
        "representatives. I can withdraw my consent at any time with the link in every "
        "message.",
    ),
}


def run(engine: Engine, hcps: int = 400, seed: int = 42) -> dict:
    rng = random.Random(seed)
    made = {"opted_in": 0, "opted_out": 0, "pending": 0}
    with Session(engine) as session:
        audit.bind_actor(session, None, "seed")
        admin = session.scalar(select(User).where(User.role == Role.admin).limit(1))
        marketing = session.scalar(select(User).where(User.role == Role.marketing).limit(1))
        texts = {
            lang: service.add_text(session, marketing, code, lang, body)
            for lang, (code, body) in TEXTS.items()
        }
        accounts = session.scalars(
            select(Account).where(Account.kind == "hcp").order_by(Account.id).limit(hcps)
        ).all()
        for acc in accounts:
            text = texts["fr" if acc.country == "FR" else "en"]
            draw = rng.random()
            email = (acc.emails or [None])[0]
            signed = {"source": "signed_in_person", "text_id": text.id}
            signed["proof"] = f"signed form {acc.id:06d}"
            if draw < 0.1 and email:  # waits for the HCP's click (double opt-in)
                counted, status = "pending", "opted_in"
                how = {"source": "web_form", "text_id": text.id, "email": email}
                how["double_opt_in"] = True
            elif draw < 0.2:
                counted, status = "opted_out", "opted_out"
                how = {"source": "import", "proof": "demo import: opt-out list 2026-09"}
            else:
                counted, status = "opted_in", "opted_in"
                how = {"source": "import", "text_id": text.id}
                how["proof"] = "demo import: consent forms 2026-09"
            choices = [("email", status, how, counted)]
            if draw > 0.3:
                choices.append(("remote_meeting", "opted_in", signed, "remote_meeting"))
            if draw > 0.5:
                choices.append(("phone", "opted_in", signed, None))
            for channel, status, proof, counted in choices:
                service.capture(session, admin, acc.id, channel=channel, status=status, **proof)
                if counted:
                    made[counted] = made.get(counted, 0) + 1
        # the double opt-in emails of the demo are not sent: nobody reads those inboxes
        from parcours.core.models import Job

        for job in session.scalars(select(Job).where(Job.kind == "consent.confirmation")):
            job.state, job.error = "done", "demo data: not sent"
        session.commit()
    return made
