"""The demo documents added and indexed through the real service, for the assistant tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from parcours.ai import service
from parcours.ai.models import InsightDocument
from parcours.core.models import User
from parcours.seed import insight as demo

from factories import create_user


@dataclass
class World:
    marketing: User
    rep: User
    admin: User
    docs: dict[str, InsightDocument]


def add(
    session: Session,
    user: User,
    path: Path,
    *,
    roles=(),
    category=None,
    product=None,
    language=None,
    title=None,
    groups=(),
    countries=(),
) -> InsightDocument:
    doc, _ = service.add_file(
        session,
        user,
        path.name,
        path.read_bytes(),
        acl=service.Acl.of(roles, groups, (), countries),
        meta=service.Meta(title=title, category=category, product=product, language=language),
    )
    return service.index_now(session, doc.id)


def build(session: Session, folder: Path) -> World:
    marketing = create_user(session, "marketing", country="FR")
    rep = create_user(session, "rep", country="FR")
    admin = create_user(session, "admin")
    docs = {}
    for item in demo.write(folder):
        docs[item["path"].name] = add(
            session,
            marketing,
            item["path"],
            roles=item["roles"],
            category=item["category"],
            product=item["product"],
            language=item["language"],
            title=item["title"],
        )
    return World(marketing, rep, admin, docs)
