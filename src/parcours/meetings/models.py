"""Remote detailing meetings: the meeting, each invited person, and the quality reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, BigId, UTCDateTime, utcnow

# scheduled → live → ended; cancelled before it starts
MEETING_STATES = ("scheduled", "live", "ended", "cancelled")
# invited → waiting → admitted → left; refused or removed by the host (never back in)
ATTENDEE_STATES = ("invited", "waiting", "admitted", "left", "refused", "removed")


class Meeting(Base):
    """A video room of one rep with one to three HCPs, tied to its remote-detailing call."""

    __tablename__ = "meetings"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # the remote call on the agenda; None once a cancelled meeting's planned call is removed
    activity_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("activities.id"))
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_min: Mapped[int] = mapped_column(Integer, default=15)
    state: Mapped[str] = mapped_column(String(10), default="scheduled")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # iCalendar SEQUENCE
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeetingAttendee(Base):
    """One invited HCP: a personal link (nonce) and passcode, and what became of them."""

    __tablename__ = "meeting_attendees"
    __audited__ = True
    __audit_exclude__ = ("passcode_hash", "nonce")
    __table_args__ = (Index("ix_meeting_attendees_meeting", "meeting_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    nonce: Mapped[str] = mapped_column(String(32))  # part of the signed link
    passcode_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="invited")
    failed_passcodes: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first admitted
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)  # 1–5, asked after the meeting


class MeetingQuality(Base):
    """A browser's WebRTC statistics, every few seconds (not audited: measurements)."""

    __tablename__ = "meeting_quality"
    __table_args__ = (Index("ix_meeting_quality_meeting", "meeting_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    peer: Mapped[str] = mapped_column(String(20))  # host or a<attendee id>
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rtt_ms: Mapped[float | None] = mapped_column(Float)
    jitter_ms: Mapped[float | None] = mapped_column(Float)
    loss_pct: Mapped[float | None] = mapped_column(Float)
    bitrate_kbps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
