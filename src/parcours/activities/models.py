"""Activity, attendee, amendment and task tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, BigId, UTCDateTime, utcnow

STATUSES = ("planned", "saved", "submitted")
OUTCOMES = ("positive", "neutral", "negative", "no_contact")


class Activity(Base):
    """One touchpoint. Field, phone and remote calls are call reports with a status."""

    __tablename__ = "activities"
    __audited__ = True
    __table_args__ = (
        Index("ix_activities_owner_start", "owner_id", "start_at"),
        Index("ix_activities_start", "start_at"),
        # the analytics snapshot reads what changed since its last refresh
        Index("ix_activities_updated", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str | None] = mapped_column(String(30))  # e.g. email: sent/opened/clicked
    status: Mapped[str] = mapped_column(String(10), default="planned")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_min: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    product_ids: Mapped[list] = mapped_column(JSON, default=list)
    key_messages: Mapped[list] = mapped_column(JSON, default=list)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Attendee(Base):
    """An account present at an activity; the primary account is always one. Feeds timelines."""

    __tablename__ = "activity_attendees"
    __audited__ = True
    __table_args__ = (
        Index("ix_attendees_timeline", "account_id", "start_at", "activity_id"),
        Index("ix_attendees_activity", "activity_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("activities.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # Copied from the activity so a timeline page is one index range scan.
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(20))


class Amendment(Base):
    """A correction to a submitted call; the original stays as it was submitted."""

    __tablename__ = "activity_amendments"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    changes: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    __audited__ = True
    __table_args__ = (Index("ix_tasks_owner_status_due", "owner_id", "status", "due_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    activity_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("activities.id"))
    title: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | done
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
