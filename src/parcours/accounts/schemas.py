"""API shapes for accounts, territories and alignments."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from parcours.core.schemas import Strict


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    display_name: str
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    specialty: str | None = None
    profession: str | None = None
    hco_type: str | None = None
    emails: list[str] = []
    phones: list[str] = []
    preferred_language: str | None = None
    preferred_channel: str | None = None
    country: str
    city: str | None = None
    segment_id: int | None = None


class AddressRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    line1: str
    line2: str | None
    postal_code: str
    city: str
    country: str
    is_primary: bool


class IdentifierRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    system: str
    value: str


class AffiliationRead(BaseModel):
    account_id: int
    display_name: str
    role: str | None
    is_primary: bool


class AccountDetail(AccountRead):
    segment: str | None = None
    addresses: list[AddressRead] = []
    identifiers: list[IdentifierRead] = []
    affiliations: list[AffiliationRead] = []
    territory_ids: list[int] = []


class AccountPage(BaseModel):
    items: list[AccountRead]
    next_cursor: str | None


class TerritoryCreate(Strict):
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    level: str = Field(pattern="^(country|region|territory)$")
    parent_id: int | None = None
    country: str = Field(min_length=2, max_length=2)


class TerritoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    country: str


class AccountAlignmentCreate(Strict):
    account_id: int
    territory_id: int


class UserAlignmentCreate(Strict):
    user_id: int
    territory_id: int


class AlignmentRead(BaseModel):
    id: int
    territory_id: int
    account_id: int | None = None
    user_id: int | None = None
