"""API shapes for Approved Email: templates a rep may send, the values they fill, a message."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from parcours.core.schemas import Strict


class EmailValues(Strict):
    """The only things a rep chooses; any other key (subject, html, body…) is refused."""

    template_id: int = Field(ge=1, strict=True)
    phrase: str | None = Field(default=None, max_length=2000)
    date: str | None = Field(default=None, max_length=10)  # ISO 8601, checked by the service
    content_version_id: int | None = Field(default=None, ge=1, strict=True)
    # the call report this email follows up (optional)
    after_call_id: int | None = Field(default=None, ge=1, strict=True)

    def raw(self) -> dict:
        """The values for the service, only those given."""
        return self.model_dump(exclude={"template_id", "after_call_id"}, exclude_none=True)


class EmailTemplateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    content_type: str
    language: str
    valid_until: date | None
    tokens: list[str]
    phrases: list[str]


class RefusalRead(BaseModel):
    rule: str
    message: str


class EmailPreviewRead(BaseModel):
    subject: str
    html: str
    text: str
    refusals: list[RefusalRead]


class EmailMessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    state: str
    account_id: int
    version_id: int
    to_address: str
    subject: str
    queued_at: datetime
    send_after: datetime
    follows_activity_id: int | None = None
