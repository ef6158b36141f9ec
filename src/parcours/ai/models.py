"""Insight tables: indexed documents and their passages, questions asked, groups for access."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from parcours.accounts import models as _accounts  # noqa: F401  (hcp_id's table)
from parcours.core.db import Base, BigId, UTCDateTime, utcnow

SOURCES = ("upload", "folder", "sharepoint", "content")
# queued → indexing → indexed | failed
STATES = ("queued", "indexing", "indexed", "failed")
# kinds of knowledge: the insight assistant reads the first four, the help desk hr and it
CATEGORIES = ("market_research", "study", "report", "medical", "hr", "it", "other")
ASSISTANTS = ("insight", "helpdesk", "medinfo")
# what became of a question: answered from the passages, handed over to a person, or
# refused (nothing readable supports an answer)
OUTCOMES = ("answered", "handover", "refused")
FEEDBACK = ("up", "down")
# medical information answers: drafted by the assistant, sent only once a person approved
REVIEW_STATES = ("pending", "approved", "rejected")


class UserGroup(Base):
    """A named group of users, used by document access lists (HR, IT, brand team…)."""

    __tablename__ = "user_groups"
    __audited__ = True
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_user_group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))


class InsightDocument(Base):
    """One file from one source, with who may read it; its text lives in its passages."""

    __tablename__ = "insight_documents"
    __audited__ = True
    __audit_exclude__ = ("error",)
    __table_args__ = (
        UniqueConstraint("source", "source_ref", name="uq_insight_source_ref"),
        Index("ix_insight_documents_acl", "acl_key"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(12))
    # the item's identity in its source: a path, a Graph item id, a content version id…
    source_ref: Mapped[str] = mapped_column(String(400))
    # the source's own version of the item (a Graph eTag): unchanged means nothing to fetch
    source_version: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigId)
    title: Mapped[str] = mapped_column(String(300))
    authors: Mapped[str | None] = mapped_column(String(300))
    doc_date: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str | None] = mapped_column(String(5))
    product: Mapped[str | None] = mapped_column(String(100))
    study: Mapped[str | None] = mapped_column(String(100))
    # kind of knowledge: market_research, study, report, hr, it, medical…
    category: Mapped[str | None] = mapped_column(String(30))
    # who may read it: roles, groups, user ids, countries (see docs/insight.md)
    acl_roles: Mapped[list] = mapped_column(JSON, default=list)
    acl_groups: Mapped[list] = mapped_column(JSON, default=list)
    acl_users: Mapped[list] = mapped_column(JSON, default=list)
    acl_countries: Mapped[list] = mapped_column(JSON, default=list)
    acl_key: Mapped[str] = mapped_column(String(600))
    # index.acl_hash(acl_key): what every index entry of the document carries
    acl_hash: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(10), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    web_url: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InsightChunk(Base):
    """A passage of a document, inside one page or slide, with where it is for citations."""

    __tablename__ = "insight_chunks"
    __table_args__ = (
        Index("ix_insight_chunks_document", "document_id", "ordinal"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("insight_documents.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    page: Mapped[int] = mapped_column(Integer)  # 1-based page, slide, sheet or section
    location: Mapped[str] = mapped_column(String(200))  # "page 12", "slide 3", "Sheet1"…
    heading: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(5))
    text: Mapped[str] = mapped_column(Text)


class InsightQuestion(Base):
    """A question, the passages used, the answer given and what the asker thought of it."""

    __tablename__ = "insight_questions"
    __audited__ = True
    __table_args__ = (Index("ix_insight_questions_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assistant: Mapped[str] = mapped_column(String(10))
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5))
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    answer: Mapped[str | None] = mapped_column(Text)
    # [{n, chunk_id, document_id, page, score}] in citation order
    passages: Mapped[list] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(10))
    # extractive, or the model that wrote it ("llm:<model>")
    method: Mapped[str] = mapped_column(String(120))
    feedback: Mapped[str | None] = mapped_column(String(4))
    feedback_note: Mapped[str | None] = mapped_column(Text)
    # help desk: who took over a handed-over question, and their reply
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reply: Mapped[str | None] = mapped_column(Text)
    # medical information: the HCP it answers, and the person who approved it
    hcp_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    review_state: Mapped[str | None] = mapped_column(String(10))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    took_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InsightSync(Base):
    """Where a connector left off (a Graph delta link, a folder's last scan)."""

    __tablename__ = "insight_syncs"
    __table_args__ = (UniqueConstraint("source", "scope", name="uq_insight_sync"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(12))
    scope: Mapped[str] = mapped_column(String(400))
    cursor: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
