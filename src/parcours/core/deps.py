"""Request dependencies: the database session and the current user, for the API and pages."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from parcours.core import audit
from parcours.core.db import new_session
from parcours.core.errors import Forbidden, Unauthorized
from parcours.core.models import User
from parcours.core.security import csrf_matches
from parcours.core.users import user_for_token

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; committed before the response leaves, rolled back on error."""
    endpoint = request.scope.get("endpoint")
    writes = request.method not in SAFE_METHODS or getattr(endpoint, "writes_on_get", False)
    session = new_session(write=writes)
    try:
        yield session
        session.commit()
    except BaseException:
        # The error page still needs who is asking (name, role, language): detach the user
        # as loaded, so the rollback below does not expire it into an unreadable object.
        user = getattr(request.state, "user", None)
        if user is not None and user in session:
            session.expunge(user)
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def writes_on_get(endpoint):
    """Mark a GET route that also writes (an audited export): on SQLite it needs the
    write lock from the start, since a deferred read transaction cannot later write."""
    endpoint.writes_on_get = True
    return endpoint


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def api_user(request: Request, session: SessionDep) -> User:
    """The user behind the bearer token."""
    token = _bearer(request)
    if not token:
        raise Unauthorized("Send a bearer token: POST /api/v1/auth/token first.")
    user = user_for_token(session, token)
    audit.bind_actor(session, user.id, user.email)
    request.state.user = user
    return user


ApiUser = Annotated[User, Depends(api_user)]


class LoginRequired(Exception):
    """Raised by page dependencies when no one is logged in; the handler redirects."""


async def _form_csrf(request: Request) -> None:
    """Read the CSRF field of a posted form (async: the body is read on the event loop).

    No database work here: a blocking query on the event loop would stall every request.
    """
    request.state.form_csrf = None
    if request.method not in SAFE_METHODS and "x-csrf-token" not in request.headers:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("_csrf")
            request.state.form_csrf = value if isinstance(value, str) else None


def page_user(
    request: Request, session: SessionDep, _csrf: Annotated[None, Depends(_form_csrf)]
) -> User:
    """The user of the session cookie; checks the CSRF token on every unsafe request."""
    user_id = request.session.get("user_id")
    user = session.get(User, user_id) if user_id else None
    if user is None or not user.is_active or request.session.get("pw") != user.password_hash[-16:]:
        request.session.clear()
        raise LoginRequired()
    if request.method not in SAFE_METHODS:
        given = request.headers.get("x-csrf-token") or request.state.form_csrf
        if not csrf_matches(request.session.get("csrf"), given):
            raise Forbidden("The form expired. Reload the page and try again.")
    audit.bind_actor(session, user.id, user.email)
    request.state.user = user
    return user


PageUser = Annotated[User, Depends(page_user)]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def require(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise Forbidden("Your role does not allow this.")
