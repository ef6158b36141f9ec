"""API shapes for consent: capture, records, per-channel decisions and consent texts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parcours.core.schemas import Strict

Channel = Literal["email", "phone", "remote_meeting", "sms", "survey", "webinar_invitation"]


class ConsentCapture(Strict):
    channel: Channel
    status: Literal["opted_in", "opted_out"]
    source: Literal["web_form", "signed_in_person", "import"]
    text_id: int | None = Field(default=None, ge=1, strict=True)
    product_id: int | None = Field(default=None, ge=1, strict=True)
    content_type: Literal["promotional", "medical"] | None = None
    expires_at: datetime | None = None
    proof: str | None = Field(default=None, max_length=2000)
    email: str | None = Field(default=None, max_length=254)
    double_opt_in: bool = False


class ConsentRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    channel: str
    product_id: int | None
    content_type: str | None
    status: str
    source: str
    text_id: int | None
    captured_by: int | None
    captured_at: datetime
    expires_at: datetime | None
    proof: str | None
    email: str | None
    confirms_id: int | None


class ConsentDecisionRead(BaseModel):
    allowed: bool
    reason: str
    record_id: int | None


class ConsentOverview(BaseModel):
    summary: dict[str, ConsentDecisionRead]
    history: list[ConsentRecordRead]


class ConsentTextCreate(Strict):
    code: str = Field(min_length=1, max_length=60)
    language: Literal["fr", "en", "de", "es", "it"]
    body: str = Field(min_length=20, max_length=10_000)


class ConsentTextRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    version: int
    language: str
    body: str
    created_at: datetime


class ErasureRequest(Strict):
    reason: str = Field(min_length=1, max_length=2000)
