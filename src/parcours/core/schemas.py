"""API shapes for authentication and users."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


def _no_nul(value):
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, list | tuple):
        for item in value:
            _no_nul(item)
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    return value


class Strict(BaseModel):
    """Request bodies: unknown fields refused, text trimmed, NUL characters refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value):
        return _no_nul(value)


class TokenRequest(Strict):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=200)


class TokenRead(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class UserCreate(Strict):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(admin|manager|rep|marketing|reviewer)$")
    language: str = Field(default="fr", pattern="^(fr|en)$")
    country: str | None = Field(default=None, min_length=2, max_length=2)
    manager_id: int | None = None
    review_role: str | None = Field(default=None, pattern="^(medical|legal|regulatory)$")
    password: str = Field(min_length=10, max_length=200)


class UserUpdate(Strict):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: str | None = Field(default=None, pattern="^(admin|manager|rep|marketing|reviewer)$")
    language: str | None = Field(default=None, pattern="^(fr|en)$")
    country: str | None = Field(default=None, min_length=2, max_length=2)
    manager_id: int | None = None
    review_role: str | None = Field(default=None, pattern="^(medical|legal|regulatory)$")
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=200)
    unlock: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str
    role: str
    language: str
    country: str | None
    manager_id: int | None
    review_role: str | None = None
    is_active: bool
    locked_until: datetime | None
