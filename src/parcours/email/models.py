"""Email messages: what was composed from an approved template, and what became of it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, BigId, UTCDateTime, utcnow

# queued → sending → sent; refused before sending; uncertain when a worker died after
# handing the message to SMTP and before recording it (never sent again: at most once)
MESSAGE_STATES = ("queued", "sending", "sent", "failed", "uncertain")


class EmailMessage(Base):
    __tablename__ = "email_messages"
    __audited__ = True
    __audit_exclude__ = ("html", "text", "ics")
    __table_args__ = (
        Index("ix_email_messages_account", "account_id", "queued_at"),
        Index("ix_email_messages_follows", "follows_activity_id"),
        UniqueConstraint("campaign_id", "account_id", name="uq_email_campaign_account"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # idempotency and Message-ID
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("content_versions.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    values: Mapped[str] = mapped_column(Text)  # the rep's choices (JSON), for the record
    content_type: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    send_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # quiet hours
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activity_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("activities.id"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    # the call this message follows up, when a rep sent it from the call report
    follows_activity_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("activities.id"))
    # a meeting invitation's calendar event (iCalendar), attached when sent
    ics: Mapped[str | None] = mapped_column(Text)


# queued → running → done (or failed)
CAMPAIGN_STATES = ("queued", "running", "done", "failed")


class Campaign(Base):
    """A marketing mass send of one approved template to a target list, with its progress."""

    __tablename__ = "campaigns"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("content_versions.id"))
    target_list_id: Mapped[int] = mapped_column(ForeignKey("target_lists.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    values: Mapped[str] = mapped_column(Text, default="{}")  # the checked choices (JSON)
    state: Mapped[str] = mapped_column(String(10), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    queued_count: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[str] = mapped_column(Text, default="{}")  # rule → count (JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
