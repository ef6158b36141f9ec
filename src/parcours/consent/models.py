"""Consent tables: the versioned texts shown to HCPs and every consent record, never overwritten."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, UTCDateTime, utcnow

CHANNELS = ("email", "phone", "remote_meeting", "sms", "survey", "webinar_invitation")
STATUSES = ("opted_in", "opted_out", "pending")
SOURCES = ("web_form", "signed_in_person", "email_confirmation", "import", "unsubscribe")
SCOPED_TYPES = ("promotional", "medical")


class ConsentText(Base):
    """The exact wording an HCP agreed to, by code and version (a new wording = a new version)."""

    __tablename__ = "consent_texts"
    __audited__ = True
    __table_args__ = (UniqueConstraint("code", "version", name="uq_consent_text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(5))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentRecord(Base):
    """One statement of consent with its proof; the latest applicable record wins."""

    __tablename__ = "consent_records"
    __audited__ = True
    __table_args__ = (Index("ix_consent_account_channel", "account_id", "channel", "captured_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    content_type: Mapped[str | None] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    text_id: Mapped[int | None] = mapped_column(ForeignKey("consent_texts.id"))
    captured_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    proof: Mapped[str | None] = mapped_column(Text)  # e.g. signed form reference, import batch
    email: Mapped[str | None] = mapped_column(String(254))  # where a confirmation was sent
    confirms_id: Mapped[int | None] = mapped_column(ForeignKey("consent_records.id"))
