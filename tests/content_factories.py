"""Content test builders: an MLR team and versions made through the real services."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher
from fpdf import FPDF
from sqlalchemy.orm import Session

from content import docs
from parcours.accounts.models import Account, Product, Territory
from parcours.content import review, service, tasks
from parcours.content.models import ContentVersion
from parcours.core.models import User
from parcours.core.settings import get_settings

from factories import (
    PASSWORD,
    create_hcp,
    create_product,
    create_territory_tree,
    create_user,
)


@dataclass
class MLR:
    """Everyone a content item meets: its builders, its three reviewers, a rep who shows it."""

    marketing: User
    admin: User
    medical: User
    legal: User
    regulatory: User
    rep: User
    territory: Territory
    hcp: Account
    product: Product
    password: str = PASSWORD

    @property
    def reviewers(self) -> list[User]:
        return [self.medical, self.legal, self.regulatory]


# Signing checks the reviewer's password with argon2 on every signature. The team gets a
# real argon2id hash of PASSWORD with light cost parameters (read from the hash when it is
# verified) so that a scenario with a dozen signatures stays fast.
_LIGHT_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


def _member(session: Session, role: str, **over) -> User:
    user = create_user(session, role, **over)
    user.password_hash = _LIGHT_HASH
    return user


@contextmanager
def acting(session: Session, user: User):
    """Attribute the writes inside the block to user, as a request would."""
    before = session.info.get("audit_actor")
    session.info["audit_actor"] = (user.id, user.email)
    try:
        yield
    finally:
        if before is None:
            session.info.pop("audit_actor", None)
        else:
            session.info["audit_actor"] = before


def make_text_pdf(path: Path, texts: list[str]) -> Path:
    """A PDF with one page per text, to compare versions page by page."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=24)
    for text in texts:
        pdf.add_page()
        pdf.cell(text=text)
    pdf.output(str(path))
    return path


def incoming_file(suffix: str = ".pdf") -> Path:
    """A fresh path next to the library, where the API receives uploads."""
    folder = get_settings().content_dir / ".incoming"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
    os.close(fd)
    return Path(name)


def content_meta(mlr: MLR, **over) -> dict:
    """Metadata for an upload through the services (dates as dates)."""
    day = service.today()
    return {
        "title": "Cardiozen launch deck",
        "content_type": "promotional",
        "language": "fr",
        "countries": ["FR"],
        "product_ids": [mlr.product.id],
        "key_messages": ["Efficacy", "Safety"],
        "valid_from": day,
        "valid_until": day + timedelta(days=365),
        **over,
    }


def upload_version(
    session: Session,
    mlr: MLR,
    *,
    pages: int = 4,
    texts: list[str] | None = None,
    file: Path | None = None,
    filename: str = "deck.pdf",
    content_id: int | None = None,
    render: bool = True,
    by: User | None = None,
    **meta,
) -> ContentVersion:
    """A draft through the real upload (a PDF of pages pages, or texts), rendered in-transaction.

    For a new version of content_id, only the metadata given changes.
    """
    if file is None:
        file = incoming_file()
        if texts is not None:
            make_text_pdf(file, texts)
        else:
            docs.make_pdf(file, pages=pages)
    data = meta if content_id is not None else content_meta(mlr, **meta)
    user = by or mlr.marketing
    with acting(session, user):
        version = service.upload(session, user, file, filename, data, content_id=content_id)
        if render:
            tasks.render_with(session, version.id)
    return version


def sign_as(
    session: Session,
    reviewer: User,
    version: ContentVersion,
    decision: str = "approved",
    comment: str | None = None,
    password: str = PASSWORD,
):
    with acting(session, reviewer):
        return review.sign(
            session, reviewer, version.id, password=password, decision=decision, comment=comment
        )


def submit(session: Session, mlr: MLR, version: ContentVersion) -> ContentVersion:
    with acting(session, mlr.marketing):
        return service.submit_for_review(session, mlr.marketing, version.id)


def approve(session: Session, mlr: MLR, version: ContentVersion) -> ContentVersion:
    """Submit a rendered draft and have every required reviewer sign it."""
    submit(session, mlr, version)
    for reviewer in mlr.reviewers:
        if reviewer.review_role in version.required_roles:
            sign_as(session, reviewer, version)
    assert version.state == "approved"
    return version


def approved_version(session: Session, mlr: MLR, pages: int = 4, **meta) -> ContentVersion:
    """An approved version built through the real services: upload, render, review, three
    signatures. Keyword arguments are upload_version's (texts, content_id…) or metadata."""
    version = upload_version(session, mlr, pages=pages, **meta)
    return approve(session, mlr, version)


def build_mlr(session: Session) -> MLR:
    """Marketing, an admin, the three MLR reviewers, a rep in FR with an HCP, a product."""
    tree = create_territory_tree(session)
    team = MLR(
        marketing=_member(session, "marketing", full_name="Marie Marketing"),
        admin=_member(session, "admin", full_name="Alain Admin"),
        medical=_member(session, "reviewer", review_role="medical", full_name="Dr Medical"),
        legal=_member(session, "reviewer", review_role="legal", full_name="Léa Legal"),
        regulatory=_member(
            session, "reviewer", review_role="regulatory", full_name="Rémi Regulatory"
        ),
        rep=_member(session, "rep", territories=[tree["north1"]], country="FR"),
        territory=tree["north1"],
        hcp=create_hcp(session, tree["north1"]),
        product=create_product(session, "Cardiozen"),
    )
    session.flush()
    return team
