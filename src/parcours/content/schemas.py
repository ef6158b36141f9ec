"""API shapes for the content library, MLR review, signatures and slide events."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from parcours.core.schemas import Strict

COUNTRY = "^[A-Z]{2}$"


class ContentMeta(Strict):
    """Metadata sent with an upload (as the JSON `metadata` form field) or to change a draft."""

    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    content_type: str | None = Field(default=None, pattern="^(promotional|medical|training)$")
    language: str | None = Field(default=None, pattern="^[a-z]{2}$")
    countries: list[str] | None = Field(default=None, max_length=60)
    product_ids: list[int] | None = Field(default=None, max_length=50)
    audience: list[str] | None = Field(default=None, max_length=20)
    key_messages: list[str] | None = Field(default=None, max_length=30)
    valid_from: date | None = None
    valid_until: date | None = None
    required_roles: list[str] | None = Field(default=None, max_length=3)
    change_note: str | None = Field(default=None, max_length=2000)
    parent_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class PageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    number: int
    text: str
    width: int
    height: int
    key_messages: list[str]


class SignatureRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    signer_id: int
    printed_name: str
    role: str
    decision: str
    meaning: str
    comment: str | None
    signed_at: datetime
    signed_hash: str
    valid: bool = True


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    page: int | None
    author_id: int
    role: str | None
    body: str
    created_at: datetime


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    content_id: int
    number: int
    state: str
    title: str
    description: str | None
    content_type: str
    language: str
    countries: list[str]
    product_ids: list[int]
    audience: list[str]
    key_messages: list[str]
    valid_from: date
    valid_until: date
    required_roles: list[str]
    kind: str
    filename: str
    media_type: str
    size: int
    sha256: str
    page_count: int
    render_state: str
    render_done: int
    render_error: str | None
    change_note: str | None
    created_by: int
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class VersionDetail(VersionRead):
    parent_id: int | None = None
    pages: list[PageRead] = []
    signatures: list[SignatureRead] = []
    comments: list[CommentRead] = []


class PageMessages(Strict):
    key_messages: list[str] = Field(max_length=30)


class CommentCreate(Strict):
    body: str = Field(min_length=1, max_length=5000)
    page: int | None = Field(default=None, ge=1, le=10_000)


class SignatureCreate(Strict):
    decision: str = Field(pattern="^(approved|rejected)$")
    password: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=5000)


class Withdrawal(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class SlideEvent(Strict):
    event_id: str = Field(min_length=8, max_length=64, pattern="^[A-Za-z0-9_.:-]+$")
    activity_id: int = Field(ge=1, le=2**62)
    version_id: int = Field(ge=1, le=2**31 - 1)
    page: int = Field(ge=1, le=10_000)
    seq: int = Field(ge=0, le=100_000)
    started_at: datetime
    duration_ms: int = Field(ge=0, le=4 * 3600 * 1000)
    reaction: str | None = Field(default=None, pattern="^(positive|neutral|negative)$")


class SlideEventBatch(Strict):
    events: list[SlideEvent] = Field(min_length=1, max_length=1000)


class Rejected(BaseModel):
    event_id: str
    field: str
    message: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


class DiffPage(BaseModel):
    page: int
    status: str
    parts: list[tuple[str, str]]
