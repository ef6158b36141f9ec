"""Users, login with lock-out, API tokens: the service layer for authentication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound, TooMany, Unauthorized
from parcours.core.models import REVIEW_ROLES, ApiToken, Role, User
from parcours.core.security import hash_password, new_token, token_digest, verify_password
from parcours.core.settings import get_settings

LANGUAGES = ("fr", "en")
_DUMMY_HASH = hash_password("not-a-real-password")


def _now() -> datetime:
    return datetime.now(UTC)


def authenticate(session: Session, email: str, password: str) -> User:
    """Check a password; count failures and lock the account after too many."""
    settings = get_settings()
    # Row lock: parallel wrong passwords must each count (PostgreSQL; SQLite writers are serial).
    user = session.scalar(
        select(User).where(func.lower(User.email) == email.strip().lower()).with_for_update()
    )
    if user is None or not user.is_active:
        verify_password(_DUMMY_HASH, password)  # same cost as a real check: no email probing
        raise Unauthorized("Wrong email or password.", field="password")
    if user.locked_until and user.locked_until > _now():
        raise TooMany(
            "Too many failed attempts: this account is locked for a few minutes.", field="email"
        )
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = _now() + timedelta(seconds=settings.login_lockout_s)
            user.failed_logins = 0
            with audit.acting_as(user.id, user.email):
                audit.note(session, "users", str(user.id), "lock", "locked after failed logins")
        raise Unauthorized("Wrong email or password.", field="password")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = _now()
    return user


def issue_token(session: Session, user: User) -> tuple[str, ApiToken]:
    token = new_token()
    row = ApiToken(
        user_id=user.id,
        token_hash=token_digest(token),
        expires_at=_now() + timedelta(seconds=get_settings().token_max_age_s),
    )
    session.add(row)
    session.flush()
    return token, row


def user_for_token(session: Session, token: str) -> User:
    user = session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_digest(token),
            ApiToken.revoked.is_(False),
            ApiToken.expires_at > _now(),
            User.is_active.is_(True),
        )
    )
    if user is None:
        raise Unauthorized("Invalid or expired token.")
    return user


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise Forbidden("Your role does not allow this.")


def list_users(session: Session, actor: User) -> list[User]:
    require_role(actor, Role.admin)
    return list(session.scalars(select(User).order_by(User.full_name)))


def get_user(session: Session, actor: User, user_id: int) -> User:
    require_role(actor, Role.admin)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def _check(session: Session, data: dict, user_id: int | None = None) -> None:
    if data.get("manager_id") is not None:
        manager = session.get(User, data["manager_id"])
        if manager is None or manager.role not in (Role.manager, Role.admin):
            raise Invalid("The manager must be an existing manager or admin.", field="manager_id")
        if manager.id == user_id:
            raise Invalid("A user cannot be their own manager.", field="manager_id")
    if data.get("country") is not None and not (
        len(data["country"]) == 2 and data["country"].isascii() and data["country"].isalpha()
    ):
        raise Invalid("Country is a two-letter code such as FR.", field="country")
    for key, limit in (("full_name", 200), ("email", 254)):
        if data.get(key) is not None and not 0 < len(data[key].strip()) <= limit:
            raise Invalid(f"{key} needs 1 to {limit} characters.", field=key)
    if "role" in data and data["role"] not in {r.value for r in Role}:
        raise Invalid(f"Unknown role {data['role']!r}.", field="role")
    if data.get("review_role") is not None and data["review_role"] not in REVIEW_ROLES:
        raise Invalid("The review role is medical, legal or regulatory.", field="review_role")
    if "language" in data and data["language"] not in LANGUAGES:
        raise Invalid("Language must be fr or en.", field="language")
    if "password" in data and data["password"] is not None and len(data["password"]) < 10:
        raise Invalid("A password needs at least 10 characters.", field="password")


def create_user(session: Session, actor: User, **data) -> User:
    require_role(actor, Role.admin)
    _check(session, data)
    email = data["email"].strip().lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise Conflict(f"A user with email {email} already exists.", field="email")
    user = User(
        email=email,
        full_name=data["full_name"].strip(),
        role=data["role"],
        language=data.get("language") or "fr",
        country=data["country"].upper() if data.get("country") else None,
        manager_id=data.get("manager_id"),
        review_role=data.get("review_role") if data["role"] == Role.reviewer else None,
        password_hash=hash_password(data["password"]),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("This user conflicts with an existing one.", field="email") from exc
    return user


def update_user(session: Session, actor: User, user_id: int, **data) -> User:
    user = get_user(session, actor, user_id)
    _check(session, data, user_id)
    for key in ("full_name", "role", "language", "is_active"):
        if data.get(key) is not None:
            setattr(user, key, data[key])
    if "review_role" in data or data.get("role"):
        role = data.get("role") or user.role
        user.review_role = (
            data.get("review_role", user.review_role) if role == Role.reviewer else None
        )
    for key in ("country", "manager_id"):  # nullable: an explicit None clears them
        if key in data:
            value = data[key]
            setattr(user, key, value.upper() if key == "country" and value else value)
    if data.get("password"):
        user.password_hash = hash_password(data["password"])
        revoke_tokens(session, user)
        audit.note(session, "users", str(user.id), "password", "password reset by an admin")
    if data.get("is_active") is False:
        revoke_tokens(session, user)
    if data.get("unlock"):
        user.locked_until = None
        user.failed_logins = 0
        audit.note(session, "users", str(user.id), "unlock", "lock-out lifted by an admin")
    session.flush()
    return user


def revoke_tokens(session: Session, user: User) -> None:
    """Every API token of this user stops working (password change, deactivation)."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(False))
    )
    for token in tokens:
        token.revoked = True


def set_language(session: Session, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise Invalid("Language must be fr or en.", field="language")
    user.language = language
    session.flush()
