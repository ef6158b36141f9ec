"""API shapes for activities, call reports, amendments and tasks."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from parcours.core.schemas import Strict

CHANNEL_PATTERN = "^(field_visit|phone|remote_detailing|email|webinar|event|web|survey)$"


class ActivityCreate(Strict):
    account_ids: list[int] = Field(min_length=1, max_length=50)
    channel: str = Field(pattern=CHANNEL_PATTERN)
    kind: str | None = Field(default=None, max_length=30)
    start_at: datetime
    status: str = Field(default="planned", pattern="^(planned|saved)$")
    duration_min: int | None = Field(default=None, ge=0, le=1440, strict=True)
    subject: str | None = Field(default=None, max_length=200)
    outcome: str | None = Field(default=None, max_length=20)
    notes: str | None = Field(default=None, max_length=10_000)
    product_ids: list[int] = Field(default_factory=list, max_length=20)
    key_messages: list[str] = Field(default_factory=list, max_length=20)


class ActivityUpdate(Strict):
    channel: str | None = Field(default=None, pattern=CHANNEL_PATTERN)
    start_at: datetime | None = None
    status: str | None = Field(default=None, pattern="^(planned|saved)$")
    duration_min: int | None = Field(default=None, ge=0, le=1440, strict=True)
    subject: str | None = Field(default=None, max_length=200)
    outcome: str | None = Field(default=None, max_length=20)
    notes: str | None = Field(default=None, max_length=10_000)
    product_ids: list[int] | None = Field(default=None, max_length=20)
    key_messages: list[str] | None = Field(default=None, max_length=20)


class AmendmentChanges(Strict):
    """The fields an amendment may correct; only those sent are changed."""

    duration_min: int = Field(default=None, ge=0, le=1440, strict=True)
    subject: str | None = Field(default=None, max_length=200)
    outcome: str = Field(default=None, pattern="^(positive|neutral|negative|no_contact)$")
    notes: str | None = Field(default=None, max_length=10_000)
    product_ids: list[int] = Field(default=None, max_length=20)
    key_messages: list[str] = Field(default=None, max_length=20)


class AmendmentCreate(Strict):
    reason: str = Field(min_length=1, max_length=2000)
    changes: AmendmentChanges


class AmendmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    author_id: int
    reason: str
    changes: dict
    created_at: datetime


class ActivityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    kind: str | None
    status: str
    owner_id: int | None
    account_id: int
    start_at: datetime
    duration_min: int | None
    subject: str | None
    outcome: str | None
    notes: str | None
    product_ids: list[int]
    key_messages: list[str]
    submitted_at: datetime | None
    locked: bool = False


class ActivityDetail(ActivityRead):
    attendee_ids: list[int] = []
    amendments: list[AmendmentRead] = []
    effective: dict = {}


class ActivityPage(BaseModel):
    items: list[ActivityRead]
    next_cursor: str | None


def activity_read(act, cls=ActivityRead, **extra) -> ActivityRead:
    data = {k: getattr(act, k) for k in ActivityRead.model_fields if k != "locked"}
    return cls.model_validate({**data, "locked": act.status == "submitted", **extra})


class TaskCreate(Strict):
    title: str = Field(min_length=1, max_length=200)
    due_date: date
    account_id: int | None = None
    activity_id: int | None = None


class TaskUpdate(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    due_date: date | None = None
    status: str | None = Field(default=None, pattern="^(open|done)$")


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    account_id: int | None
    activity_id: int | None
    title: str
    due_date: date
    status: str
