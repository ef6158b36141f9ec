"""Accounts and territories: who may see what, search, HCP 360 and timeline queries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import and_, event, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcours.accounts.models import (
    Account,
    AccountTerritory,
    Address,
    Affiliation,
    Identifier,
    Product,
    Segment,
    Territory,
    UserTerritory,
)
from parcours.accounts.text import search_key
from parcours.core import pagination
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User

ALL = None  # scope marker: every territory
READ_ALL_ROLES = (Role.admin, Role.marketing)
NO_ACCOUNT_ROLES = (Role.reviewer,)
WRITE_ROLES = (Role.admin, Role.manager, Role.rep)


def territory_scope(session: Session, user: User) -> list[int] | None:
    """Territory ids the user may see (their own and all below), or None for every one."""
    if user.role in READ_ALL_ROLES:
        return ALL
    if user.role in NO_ACCOUNT_ROLES:
        return []
    cached = _SCOPES.get(user.id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    paths = session.scalars(
        select(Territory.path)
        .join(UserTerritory, UserTerritory.territory_id == Territory.id)
        .where(UserTerritory.user_id == user.id)
    ).all()
    ids: list[int] = []
    if paths:
        cond = or_(*[Territory.path.like(p + "%") for p in paths])
        ids = list(session.scalars(select(Territory.id).where(cond)))
    scope = sorted(set(ids))
    _SCOPES[user.id] = (time.monotonic() + SCOPE_TTL_S, scope)
    return scope


# Territory scopes change rarely and are read on every request: keep them per process for
# a short while. A change made in this process clears them at once; another process sees
# it within SCOPE_TTL_S.
SCOPE_TTL_S = 30.0
_SCOPES: dict[int, tuple[float, list[int]]] = {}


def clear_scope_cache() -> None:
    _SCOPES.clear()


@event.listens_for(Session, "after_flush")
def _scopes_changed(session: Session, _ctx) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, UserTerritory | Territory | User):
            clear_scope_cache()
            return


def readable(session: Session, user: User):
    """A WHERE clause on Account limiting rows to what this user may read."""
    scope = territory_scope(session, user)
    if scope is ALL:
        return Account.status != "erased"
    if not scope:
        return Account.id.is_(None)
    return and_(
        Account.status != "erased",
        exists().where(
            AccountTerritory.account_id == Account.id, AccountTerritory.territory_id.in_(scope)
        ),
    )


def can_read(session: Session, user: User, account_id: int) -> bool:
    return (
        session.scalar(select(Account.id).where(Account.id == account_id, readable(session, user)))
        is not None
    )


def require_readable(session: Session, user: User, account_id: int) -> None:
    """NotFound unless the user may read this account (without loading it)."""
    if not can_read(session, user, account_id):
        raise NotFound(f"Account {account_id} does not exist or is outside your territories.")


def get_account(session: Session, user: User, account_id: int) -> Account:
    """An account the user may read; NotFound otherwise, so ids of others don't leak."""
    account = session.scalar(
        select(Account).where(Account.id == account_id, readable(session, user))
    )
    if account is None:
        raise NotFound(f"Account {account_id} does not exist or is outside your territories.")
    return account


def require_writable(session: Session, user: User, account_id: int) -> Account:
    if user.role not in WRITE_ROLES:
        raise Forbidden("Your role cannot record activities for accounts.")
    return get_account(session, user, account_id)


@dataclass
class SearchFilters:
    q: str | None = None
    kind: str | None = None
    specialty: str | None = None
    city: str | None = None
    segment: str | None = None
    territory_id: int | None = None


@dataclass
class Page:
    items: list
    next_cursor: str | None
    extra: dict = field(default_factory=dict)


def search_accounts(
    session: Session,
    user: User,
    filters: SearchFilters,
    *,
    cursor: str | None = None,
    limit: int = 25,
) -> Page:
    """Accounts matching a name prefix and filters, in name order, scoped to the user."""
    if not 1 <= limit <= 200:
        raise Invalid("limit must be between 1 and 200.", field="limit")
    stmt = select(Account).where(readable(session, user))
    if filters.kind:
        stmt = stmt.where(Account.kind == filters.kind)
    if filters.q:
        key = search_key(filters.q)
        if key.isdigit():
            stmt = stmt.where(
                exists().where(Identifier.account_id == Account.id, Identifier.value == key)
            )
        elif key:
            stmt = stmt.where(Account.search_name >= key, Account.search_name < key + "\uffff")
    if filters.specialty:
        stmt = stmt.where(Account.specialty == filters.specialty)
    if filters.city:
        stmt = stmt.where(Account.city_key == search_key(filters.city))
    if filters.segment:
        seg = session.scalar(select(Segment.id).where(Segment.code == filters.segment))
        stmt = stmt.where(Account.segment_id == (seg or -1))
    if filters.territory_id:
        tpath = session.scalar(select(Territory.path).where(Territory.id == filters.territory_id))
        if tpath is None:
            raise Invalid(f"Territory {filters.territory_id} does not exist.", field="territory_id")
        below = select(Territory.id).where(Territory.path.like(tpath + "%"))
        stmt = stmt.where(
            exists().where(
                AccountTerritory.account_id == Account.id, AccountTerritory.territory_id.in_(below)
            )
        )
    after = pagination.decode(cursor, 2)
    if after:
        stmt = stmt.where(
            or_(
                Account.search_name > after[0],
                and_(Account.search_name == after[0], Account.id > after[1]),
            )
        )
    rows = list(session.scalars(stmt.order_by(Account.search_name, Account.id).limit(limit + 1)))
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = pagination.encode(rows[-1].search_name, rows[-1].id)
    return Page(rows, nxt)


EXPORT_COLUMNS = (
    "id",
    "kind",
    "title",
    "first_name",
    "last_name",
    "name",
    "specialty",
    "profession",
    "city",
    "country",
    "segment",
    "emails",
    "phones",
)
EXPORT_MAX_ROWS = 100_000


def export_accounts(session: Session, user: User, filters: SearchFilters) -> str:
    """The accounts a search finds, as CSV, within the user's scope; the export is audited."""
    import csv
    import io

    segment_codes = {s.id: s.code for s in segments(session)}

    def cell(value):
        # Spreadsheets run cells that start with = + - @ as formulas (CSV injection).
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    cursor, count = None, 0
    while count < EXPORT_MAX_ROWS:
        page = search_accounts(session, user, filters, cursor=cursor, limit=200)
        for a in page.items:
            writer.writerow(
                cell(v)
                for v in [
                    a.id,
                    a.kind,
                    a.title,
                    a.first_name,
                    a.last_name,
                    a.name,
                    a.specialty,
                    a.profession,
                    a.city,
                    a.country,
                    segment_codes.get(a.segment_id),
                    " ".join(a.emails or []),
                    " ".join(a.phones or []),
                ]
            )
        count += len(page.items)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    from parcours.core import audit

    audit.note(
        session,
        "accounts",
        "export",
        "export",
        f"{count} accounts exported as CSV",
        after={k: v for k, v in filters.__dict__.items() if v},
    )
    return out.getvalue()


def display_name(account: Account) -> str:
    if account.kind == "hco":
        return account.name or ""
    parts = [account.title, account.first_name, account.last_name]
    return " ".join(p for p in parts if p)


@dataclass
class Profile:
    account: Account
    segment: Segment | None
    addresses: list[Address]
    identifiers: list[Identifier]
    affiliations: list[tuple[Affiliation, Account]]
    territories: list[Territory]


def profile(session: Session, user: User, account_id: int) -> Profile:
    """Everything the HCP 360 header needs, in a fixed handful of queries."""
    account = get_account(session, user, account_id)
    segment = session.get(Segment, account.segment_id) if account.segment_id else None
    addresses = list(
        session.scalars(
            select(Address)
            .where(Address.account_id == account_id)
            .order_by(Address.is_primary.desc(), Address.id)
        )
    )
    identifiers = list(
        session.scalars(select(Identifier).where(Identifier.account_id == account_id))
    )
    if account.kind == "hcp":
        other = Affiliation.hco_id
        cond = Affiliation.hcp_id == account_id
    else:
        other = Affiliation.hcp_id
        cond = Affiliation.hco_id == account_id
    affiliations = [
        (a, b)
        for a, b in session.execute(
            select(Affiliation, Account)
            .join(Account, Account.id == other)
            .where(cond, readable(session, user))
            .order_by(Affiliation.is_primary.desc())
            .limit(50)
        ).all()
    ]
    stmt = (
        select(Territory)
        .join(AccountTerritory, AccountTerritory.territory_id == Territory.id)
        .where(AccountTerritory.account_id == account_id)
    )
    scope = territory_scope(session, user)
    if scope is not ALL:
        stmt = stmt.where(Territory.id.in_(scope or [-1]))
    territories = list(session.scalars(stmt))
    return Profile(account, segment, addresses, identifiers, affiliations, territories)


# --- reference data -------------------------------------------------------------------------


def specialties(session: Session) -> list[str]:
    return [
        s
        for s in session.scalars(
            select(Account.specialty)
            .where(Account.specialty.is_not(None))
            .distinct()
            .order_by(Account.specialty)
        )
        if s
    ]


def segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.tier)))


def products(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).where(Product.is_active).order_by(Product.name)))


# --- territories and alignments -------------------------------------------------------------

LEVELS = ("country", "region", "territory")


def list_territories(session: Session, user: User) -> list[Territory]:
    """The territory tree in path order; scoped users see their own branch."""
    stmt = select(Territory).order_by(Territory.path)
    scope = territory_scope(session, user)
    if scope is not ALL:
        stmt = stmt.where(Territory.id.in_(scope or [-1]))
    return list(session.scalars(stmt))


def get_territory(session: Session, territory_id: int) -> Territory:
    t = session.get(Territory, territory_id)
    if t is None:
        raise NotFound(f"Territory {territory_id} does not exist.")
    return t


def create_territory(
    session: Session,
    actor: User,
    *,
    code: str,
    name: str,
    level: str,
    parent_id: int | None,
    country: str,
) -> Territory:
    if actor.role != Role.admin:
        raise Forbidden("Only an admin manages territories.")
    if level not in LEVELS:
        raise Invalid("level must be country, region or territory.", field="level")
    for key, value, limit in (("code", code, 40), ("name", name, 120)):
        if not value or not value.strip() or len(value) > limit:
            raise Invalid(f"{key} needs 1 to {limit} characters.", field=key)
    if parent_id is None and not (
        isinstance(country, str) and len(country) == 2 and country.isascii() and country.isalpha()
    ):
        raise Invalid("Country is a two-letter code such as FR.", field="country")
    parent = None
    if parent_id is not None:
        parent = session.get(Territory, parent_id)
        if parent is None:
            raise Invalid(f"Parent territory {parent_id} does not exist.", field="parent_id")
        if LEVELS.index(parent.level) >= LEVELS.index(level):
            raise Invalid(f"A {level} cannot sit under a {parent.level}.", field="parent_id")
    elif level != "country":
        raise Invalid(f"A {level} needs a parent.", field="parent_id")
    if session.scalar(select(Territory.id).where(Territory.code == code)):
        raise Conflict(f"Territory code {code} is already used.", field="code")
    t = Territory(
        code=code,
        name=name,
        level=level,
        parent_id=parent_id,
        country=(parent.country if parent else country).upper(),
    )
    session.add(t)
    session.flush()
    t.path = f"{parent.path if parent else '/'}{t.id}/"
    session.flush()
    return t


def align_account(
    session: Session, actor: User, account_id: int, territory_id: int
) -> AccountTerritory:
    if actor.role != Role.admin:
        raise Forbidden("Only an admin changes alignments.")
    if session.get(Account, account_id) is None:
        raise Invalid(f"Account {account_id} does not exist.", field="account_id")
    get_territory(session, territory_id)
    row = AccountTerritory(account_id=account_id, territory_id=territory_id)
    return _add_alignment(session, row, "This account is already aligned to this territory.")


def _add_alignment(session: Session, row, conflict: str):
    """Insert an alignment; the unique constraint's refusal becomes a 409 on territory_id."""
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict, field="territory_id") from exc
    return row


def align_user(session: Session, actor: User, user_id: int, territory_id: int) -> UserTerritory:
    if actor.role != Role.admin:
        raise Forbidden("Only an admin changes alignments.")
    if session.get(User, user_id) is None:
        raise Invalid(f"User {user_id} does not exist.", field="user_id")
    get_territory(session, territory_id)
    row = UserTerritory(user_id=user_id, territory_id=territory_id)
    _add_alignment(session, row, "This user is already aligned to this territory.")
    clear_scope_cache()
    return row


def unalign(session: Session, actor: User, kind: str, alignment_id: int) -> None:
    if actor.role != Role.admin:
        raise Forbidden("Only an admin changes alignments.")
    model = AccountTerritory if kind == "account" else UserTerritory
    row = session.get(model, alignment_id)
    if row is None:
        raise NotFound(f"Alignment {alignment_id} does not exist.")
    session.delete(row)
    session.flush()
    clear_scope_cache()


def account_alignments(
    session: Session, territory_id: int
) -> list[tuple[AccountTerritory, Account]]:
    return list(
        session.execute(
            select(AccountTerritory, Account)
            .join(Account, Account.id == AccountTerritory.account_id)
            .where(AccountTerritory.territory_id == territory_id)
            .order_by(Account.search_name)
            .limit(500)
        ).all()
    )


def user_alignments(
    session: Session, territory_id: int | None = None, *, user_id: int | None = None
) -> list[tuple[UserTerritory, User, Territory]]:
    stmt = (
        select(UserTerritory, User, Territory)
        .join(User, User.id == UserTerritory.user_id)
        .join(Territory, Territory.id == UserTerritory.territory_id)
        .order_by(Territory.path, User.full_name)
    )
    if territory_id:
        stmt = stmt.where(UserTerritory.territory_id == territory_id)
    if user_id:
        stmt = stmt.where(UserTerritory.user_id == user_id)
    return list(session.execute(stmt).all())
