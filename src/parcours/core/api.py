"""JSON routes for authentication and user administration."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.core import users
from parcours.core.deps import ApiUser, SessionDep
from parcours.core.schemas import TokenRead, TokenRequest, UserCreate, UserRead, UserUpdate

router = APIRouter()


@router.post("/auth/token", response_model=TokenRead, tags=["auth"])
def token(body: TokenRequest, session: SessionDep):
    """Exchange an email and password for a bearer token."""
    try:
        user = users.authenticate(session, body.email, body.password)
    except Exception:
        session.commit()  # keep the failure count and lock-out
        raise
    raw, row = users.issue_token(session, user)
    return TokenRead(access_token=raw, expires_at=row.expires_at)


@router.get("/me", response_model=UserRead, tags=["auth"])
def me(user: ApiUser):
    return UserRead.model_validate(user)


@router.get("/users", response_model=list[UserRead], tags=["users"])
def list_users(user: ApiUser, session: SessionDep):
    return [UserRead.model_validate(u) for u in users.list_users(session, user)]


@router.post("/users", response_model=UserRead, status_code=201, tags=["users"])
def create_user(body: UserCreate, user: ApiUser, session: SessionDep):
    return UserRead.model_validate(users.create_user(session, user, **body.model_dump()))


@router.get("/users/{user_id}", response_model=UserRead, tags=["users"])
def get_user(user_id: int, user: ApiUser, session: SessionDep):
    return UserRead.model_validate(users.get_user(session, user, user_id))


@router.patch("/users/{user_id}", response_model=UserRead, tags=["users"])
def update_user(user_id: int, body: UserUpdate, user: ApiUser, session: SessionDep):
    data = body.model_dump(exclude_unset=True)
    return UserRead.model_validate(users.update_user(session, user, user_id, **data))
