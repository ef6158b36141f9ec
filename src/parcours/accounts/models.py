"""Account, territory and product tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.core.db import Base, UTCDateTime, utcnow

ACCOUNT_KINDS = ("hcp", "hco")
HCO_TYPES = ("hospital", "clinic", "pharmacy", "practice", "laboratory", "university")
CHANNELS = (
    "field_visit",
    "phone",
    "remote_detailing",
    "email",
    "webinar",
    "event",
    "web",
    "survey",
)


class Segment(Base):
    __tablename__ = "segments"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    tier: Mapped[int] = mapped_column(Integer, default=3)


class Territory(Base):
    """A node of the country → region → territory tree; path holds the ancestors' ids."""

    __tablename__ = "territories"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[str] = mapped_column(String(10))  # country | region | territory
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    path: Mapped[str] = mapped_column(String(200), default="/", index=True)
    country: Mapped[str] = mapped_column(String(2))


class Product(Base):
    __tablename__ = "products"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    therapeutic_area: Mapped[str | None] = mapped_column(String(80))
    is_active: Mapped[bool] = mapped_column(default=True)


class Account(Base):
    """An HCP (a person) or an HCO (an organisation)."""

    __tablename__ = "accounts"
    __audited__ = True
    __table_args__ = (
        Index("ix_accounts_search", "kind", "search_name"),
        Index("ix_accounts_specialty_search", "specialty", "search_name"),
        Index("ix_accounts_city_search", "city_key", "search_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(3))
    # HCP fields
    title: Mapped[str | None] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    specialty: Mapped[str | None] = mapped_column(String(80))
    profession: Mapped[str | None] = mapped_column(String(80))
    # HCO fields
    name: Mapped[str | None] = mapped_column(String(200))
    hco_type: Mapped[str | None] = mapped_column(String(20))
    # shared
    emails: Mapped[list] = mapped_column(JSON, default=list)
    phones: Mapped[list] = mapped_column(JSON, default=list)
    preferred_language: Mapped[str | None] = mapped_column(String(5))
    preferred_channel: Mapped[str | None] = mapped_column(String(20))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    # Denormalised for fast search: lower-cased, accent-free "last first" / name, and primary city.
    search_name: Mapped[str] = mapped_column(String(220))
    city: Mapped[str | None] = mapped_column(String(100))
    city_key: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Identifier(Base):
    __tablename__ = "account_identifiers"
    __audited__ = True
    __table_args__ = (UniqueConstraint("system", "value", name="uq_identifier_system_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(String(20))  # rpps | npi | gln | siret | ...
    value: Mapped[str] = mapped_column(String(40))


class Address(Base):
    __tablename__ = "addresses"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    is_primary: Mapped[bool] = mapped_column(default=False)


class Affiliation(Base):
    __tablename__ = "affiliations"
    __audited__ = True
    __table_args__ = (UniqueConstraint("hcp_id", "hco_id", name="uq_affiliation_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hcp_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    hco_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str | None] = mapped_column(String(80))
    is_primary: Mapped[bool] = mapped_column(default=False)


class AccountTerritory(Base):
    """Alignment of an account to a territory."""

    __tablename__ = "account_territories"
    __audited__ = True
    __table_args__ = (
        UniqueConstraint("account_id", "territory_id", name="uq_account_territory"),
        Index("ix_account_territories_territory", "territory_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"))


class UserTerritory(Base):
    """Alignment of a user to a territory (a manager is aligned to a region)."""

    __tablename__ = "user_territories"
    __audited__ = True
    __table_args__ = (UniqueConstraint("user_id", "territory_id", name="uq_user_territory"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True
    )


class TargetList(Base):
    __tablename__ = "target_lists"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    cycle_start: Mapped[date] = mapped_column(Date)
    cycle_end: Mapped[date] = mapped_column(Date)


class TargetListEntry(Base):
    __tablename__ = "target_list_entries"
    __audited__ = True
    __table_args__ = (UniqueConstraint("target_list_id", "account_id", name="uq_target_entry"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_list_id: Mapped[int] = mapped_column(ForeignKey("target_lists.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    planned_calls: Mapped[int] = mapped_column(Integer, default=1)


class UserProduct(Base):
    """The products a rep details; content offered in the player is limited to them."""

    __tablename__ = "user_products"
    __audited__ = True
    __table_args__ = (UniqueConstraint("user_id", "product_id", name="uq_user_product"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
