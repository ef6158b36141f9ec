"""Content library tables: items, versions, pages, MLR comments, signatures, slide views."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, BigId, UTCDateTime, utcnow
from parcours.core.models import REVIEW_ROLES

KINDS = ("pdf", "pptx", "html5", "image", "video", "email")
CONTENT_TYPES = ("promotional", "medical", "training")
STATES = ("draft", "in_review", "approved", "rejected", "superseded", "expired", "withdrawn")
REACTIONS = ("positive", "neutral", "negative")
# Rendering of the uploaded file, apart from the MLR state: queued → rendering → ready | failed.
RENDER_STATES = ("queued", "rendering", "ready", "failed")


class Content(Base):
    """A content item; what it says and shows lives in its versions."""

    __tablename__ = "contents"
    __audited__ = True
    # ids never come back after a delete: a version's files live in a folder named by its id
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContentVersion(Base):
    """One reviewed unit: the exact file bytes and the metadata the reviewers saw."""

    __tablename__ = "content_versions"
    __audited__ = True
    __table_args__ = (
        UniqueConstraint("content_id", "number", name="uq_content_version"),
        Index("ix_content_versions_state", "state", "valid_until"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("contents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12), default="draft")
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(12))
    language: Mapped[str] = mapped_column(String(5))
    countries: Mapped[list] = mapped_column(JSON, default=list)
    product_ids: Mapped[list] = mapped_column(JSON, default=list)
    audience: Mapped[list] = mapped_column(JSON, default=list)  # HCP specialties; empty = all
    key_messages: Mapped[list] = mapped_column(JSON, default=list)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    required_roles: Mapped[list] = mapped_column(JSON, default=lambda: list(REVIEW_ROLES))
    kind: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    render_state: Mapped[str] = mapped_column(String(10), default="queued")
    render_done: Mapped[int] = mapped_column(Integer, default=0)
    render_error: Mapped[str | None] = mapped_column(Text)
    change_note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    end_reason: Mapped[str | None] = mapped_column(Text)


class ContentPage(Base):
    """A rendered page or slide: its text for search and diff, and the key messages it carries."""

    __tablename__ = "content_pages"
    __table_args__ = (UniqueConstraint("version_id", "number", name="uq_content_page"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("content_versions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    key_messages: Mapped[list] = mapped_column(JSON, default=list)


class ReviewComment(Base):
    __tablename__ = "review_comments"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("content_versions.id", ondelete="CASCADE"), index=True
    )
    page: Mapped[int | None] = mapped_column(Integer)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str | None] = mapped_column(String(12))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Signature(Base):
    """An electronic signature (21 CFR Part 11 style): who, when, meaning, bound to a hash."""

    __tablename__ = "signatures"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("content_versions.id", ondelete="CASCADE"), index=True
    )
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    printed_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(12))
    decision: Mapped[str] = mapped_column(String(10))  # approved | rejected
    meaning: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    signed_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlideView(Base):
    """A slide shown in a call, sent by the player; its event id makes ingestion idempotent."""

    __tablename__ = "slide_views"
    __table_args__ = (
        Index("ix_slide_views_version", "version_id", "page"),
        Index("ix_slide_views_activity", "activity_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("activities.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("content_versions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    page: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)  # display order within the presentation
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    reaction: Mapped[str | None] = mapped_column(String(10))
    key_messages: Mapped[list] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
