"""HTML routes for login, logout, language and the admin pages (users, territories, alignments)."""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.datastructures import FormData

from parcours.accounts import service as accounts
from parcours.core import users
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound, TooMany, Unauthorized
from parcours.core.i18n import LANGUAGES, translate
from parcours.core.models import Role, User
from parcours.core.security import csrf_matches
from parcours.web.pages import Form, flash, form_errors, form_text, is_id, redirect, safe_next
from parcours.web.render import language, render

router = APIRouter()

ROLES = tuple(r.value for r in Role)


def render_t(request: Request, key: str) -> str:
    return translate(language(request), key)


def _require_filled(values: dict, *fields: str) -> None:
    missing = [f for f in fields if not values[f]]
    if missing:
        raise Invalid("required", errors=[{"field": f, "message": "required"} for f in missing])


def _errors(request: Request, exc) -> dict[str, str]:
    """Field errors in the user's language, "required" spelled out."""
    return {
        k: (render_t(request, "form.required") if v == "required" else v)
        for k, v in form_errors(request, exc).items()
    }


def _check_anonymous_csrf(request: Request, form: FormData) -> None:
    if not csrf_matches(request.session.get("csrf"), form.get("_csrf")):
        raise Forbidden("The form expired. Reload the page and try again.")


# --- login, logout, language -------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, session: SessionDep, next: str = "/"):
    user_id = request.session.get("user_id")
    if user_id and session.get(User, user_id) is not None:
        return redirect(safe_next(next))
    return render(request, "core/login.html", {"next": safe_next(next), "email": "", "errors": {}})


@router.post("/login")
def login(request: Request, session: SessionDep, form: Form):
    _check_anonymous_csrf(request, form)
    email = form_text(form, "email")
    target = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    try:
        if not email:
            raise Invalid("Enter your email.", field="email")
        user = users.authenticate(session, email, password)
    except (Unauthorized, TooMany, Invalid) as exc:
        # The failure count (and a lock) must be kept: the request's session commits normally.
        errors = form_errors(request, exc)
        if not email:
            errors = {"email": render_t(request, "login.email_required")}
        ctx = {"next": target, "email": email, "errors": errors, "locked": isinstance(exc, TooMany)}
        return render(request, "core/login.html", ctx, status=exc.status)
    lang = request.session.get("lang")
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["pw"] = user.password_hash[-16:]
    request.session["csrf"] = secrets.token_urlsafe(24)
    if lang:
        request.session["lang"] = lang
    return redirect(target)


@router.post("/login/language")
def login_language(request: Request, form: Form):
    """Language of the login page, before anyone is known (kept in the cookie session)."""
    _check_anonymous_csrf(request, form)
    lang = form.get("language")
    if lang in LANGUAGES:
        request.session["lang"] = lang
    target = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    return redirect("/login" + (f"?next={target}" if target != "/" else ""))


@router.post("/logout")
def logout(request: Request, user: PageUser):
    request.session.clear()
    return redirect("/login")


@router.post("/language")
def switch_language(request: Request, user: PageUser, session: SessionDep, form: Form):
    lang = form.get("language")
    with contextlib.suppress(Invalid):
        users.set_language(session, user, lang if isinstance(lang, str) else "")
    return redirect(safe_next(form.get("next") if isinstance(form.get("next"), str) else None))


# --- admin: users ------------------------------------------------------------------------------


def _admin(user: User) -> None:
    require(user, Role.admin)


def _is_locked(u: User) -> bool:
    return bool(u.locked_until and u.locked_until > datetime.now(UTC))


@router.get("/admin")
def admin_home(user: PageUser):
    _admin(user)
    return redirect("/admin/users")


@router.get("/admin/users")
def users_list(request: Request, user: PageUser, session: SessionDep):
    rows = users.list_users(session, user)
    return render(
        request,
        "core/admin/users.html",
        {"users": rows, "locked": {u.id for u in rows if _is_locked(u)}},
    )


def _user_form_ctx(session, actor: User, values: dict, errors: dict, edited: User | None = None):
    managers = [u for u in users.list_users(session, actor) if u.role in ("manager", "admin")]
    ctx = {
        "values": values,
        "errors": errors,
        "edited": edited,
        "roles": ROLES,
        "managers": [m for m in managers if edited is None or m.id != edited.id],
    }
    if edited is not None:
        ctx["locked"] = _is_locked(edited)
        ctx["alignments"] = [
            (ut, t) for ut, _u, t in accounts.user_alignments(session, user_id=edited.id)
        ]
    return ctx


@router.get("/admin/users/new")
def user_new(request: Request, user: PageUser, session: SessionDep):
    _admin(user)
    values = {"role": "rep", "language": "fr", "country": "FR"}
    return render(request, "core/admin/user_form.html", _user_form_ctx(session, user, values, {}))


def _user_values(form: FormData) -> dict:
    manager = form_text(form, "manager_id")
    return {
        "email": form_text(form, "email"),
        "full_name": form_text(form, "full_name"),
        "role": form_text(form, "role"),
        "language": form_text(form, "language"),
        "country": form_text(form, "country").upper() or None,
        "manager_id": int(manager) if is_id(manager) else None,
        "review_role": form_text(form, "review_role") or None,
        "password": form.get("password") or None,
        "groups": form_text(form, "groups"),
    }


def _set_groups(session, user_id: int, groups: str) -> None:
    """A user's groups live with the documents they open (insight access lists)."""
    from parcours.ai import service as insight

    insight.set_groups(session, user_id, groups.split(","))


def _groups_of(session, user_id: int) -> str:
    from parcours.ai import service as insight

    return ", ".join(insight.group_names(session, user_id))


@router.post("/admin/users")
def user_create(request: Request, user: PageUser, session: SessionDep, form: Form):
    _admin(user)
    values = _user_values(form)
    try:
        _require_filled(values, "email", "full_name", "password")
        fields = {k: v for k, v in values.items() if k != "groups"}
        with session.begin_nested():  # the user and their groups, or neither
            created = users.create_user(session, user, **fields)
            _set_groups(session, created.id, values["groups"])
    except (Invalid, Conflict) as exc:
        errors = _errors(request, exc)
        ctx = _user_form_ctx(session, user, values, errors)
        return render(request, "core/admin/user_form.html", ctx, status=422)
    flash(request, "flash.user_created")
    return redirect(f"/admin/users/{created.id}")


@router.get("/admin/users/{user_id}")
def user_edit(request: Request, user_id: int, user: PageUser, session: SessionDep):
    edited = users.get_user(session, user, user_id)
    values = {
        k: getattr(edited, k)
        for k in (
            "email",
            "full_name",
            "role",
            "language",
            "country",
            "manager_id",
            "review_role",
            "is_active",
        )
    }
    values["groups"] = _groups_of(session, edited.id)
    return render(
        request, "core/admin/user_form.html", _user_form_ctx(session, user, values, {}, edited)
    )


@router.post("/admin/users/{user_id}")
def user_update(request: Request, user_id: int, user: PageUser, session: SessionDep, form: Form):
    edited = users.get_user(session, user, user_id)
    if form.get("action") == "unlock":
        users.update_user(session, user, user_id, unlock=True)
        flash(request, "flash.user_unlocked")
        return redirect(f"/admin/users/{user_id}")
    values = _user_values(form)
    values.pop("email")
    values["is_active"] = form.get("is_active") == "on"
    if edited.id == user.id and not values["is_active"]:
        values["is_active"] = True  # an admin cannot lock themself out
    try:
        _require_filled(values, "full_name")
        fields = {k: v for k, v in values.items() if k != "groups"}
        with session.begin_nested():
            users.update_user(session, user, user_id, **fields)
            _set_groups(session, user_id, values["groups"])
    except (Invalid, Conflict) as exc:
        errors = _errors(request, exc)
        ctx = _user_form_ctx(session, user, {**values, "email": edited.email}, errors, edited)
        return render(request, "core/admin/user_form.html", ctx, status=422)
    flash(request, "flash.user_saved")
    return redirect(f"/admin/users/{user_id}")


# --- admin: territories ------------------------------------------------------------------------


def _territory_ctx(session, user, values, errors):
    tree = accounts.list_territories(session, user)
    return {
        "tree": tree,
        "values": values,
        "errors": errors,
        "levels": accounts.LEVELS,
        "parents": [t for t in tree if t.level != "territory"],
    }


@router.get("/admin/territories")
def territories_page(request: Request, user: PageUser, session: SessionDep):
    _admin(user)
    values = {"level": "territory", "country": "FR"}
    return render(request, "core/admin/territories.html", _territory_ctx(session, user, values, {}))


@router.post("/admin/territories")
def territory_create(request: Request, user: PageUser, session: SessionDep, form: Form):
    _admin(user)
    parent = form_text(form, "parent_id")
    values = {
        "code": form_text(form, "code"),
        "name": form_text(form, "name"),
        "level": form_text(form, "level"),
        "country": form_text(form, "country").upper() or "FR",
        "parent_id": int(parent) if is_id(parent) else None,
    }
    try:
        _require_filled(values, "code", "name")
        accounts.create_territory(session, user, **values)
    except (Invalid, Conflict) as exc:
        errors = _errors(request, exc)
        return render(
            request,
            "core/admin/territories.html",
            _territory_ctx(session, user, values, errors),
            status=422,
        )
    flash(request, "flash.territory_created")
    return redirect("/admin/territories")


# --- admin: alignments -------------------------------------------------------------------------


@router.get("/admin/alignments")
def alignments_page(
    request: Request, user: PageUser, session: SessionDep, territory: int | None = None
):
    _admin(user)
    tree = accounts.list_territories(session, user)
    current = next((t for t in tree if t.id == territory), None)
    ctx: dict = {"tree": tree, "current": current, "errors": {}}
    if current is not None:
        ctx["user_rows"] = accounts.user_alignments(session, current.id)
        ctx["account_rows"] = accounts.account_alignments(session, current.id)
        aligned = {u.id for _, u, _t in ctx["user_rows"]}
        ctx["candidates"] = [
            u
            for u in users.list_users(session, user)
            if u.id not in aligned and u.role in ("rep", "manager")
        ]
    return render(request, "core/admin/alignments.html", ctx)


@router.get("/admin/alignments/account-search")
def alignment_account_search(
    request: Request, user: PageUser, session: SessionDep, territory: int, q: str = ""
):
    _admin(user)
    current = accounts.get_territory(session, territory)
    rows = []
    if q.strip():
        rows = accounts.search_accounts(session, user, accounts.SearchFilters(q=q), limit=8).items
    return render(
        request,
        "core/admin/_partials/account_candidates.html",
        {"rows": rows, "current": current, "q": q, "display_name": accounts.display_name},
    )


def _territory_id(form: FormData) -> int:
    raw = form_text(form, "territory_id")
    if not is_id(raw):
        raise NotFound("Territory does not exist.")
    return int(raw)


@router.post("/admin/alignments/{kind}s")
def align(request: Request, kind: str, user: PageUser, session: SessionDep, form: Form):
    """Align a user (kind "user") or an account ("account") to a territory."""
    _admin(user)
    if kind not in ("user", "account"):
        raise NotFound("No such alignment kind.")
    tid = _territory_id(form)
    raw = form_text(form, f"{kind}_id")
    align_one = accounts.align_user if kind == "user" else accounts.align_account
    try:
        align_one(session, user, int(raw) if is_id(raw) else -1, tid)
        flash(request, "flash.aligned")
    except (Invalid, Conflict):
        flash(request, "flash.align_failed", "error")
    return redirect(f"/admin/alignments?territory={tid}")


@router.post("/admin/alignments/{kind}/{alignment_id}/delete")
def unalign(
    request: Request, kind: str, alignment_id: int, user: PageUser, session: SessionDep, form: Form
):
    _admin(user)
    if kind not in ("user", "account"):
        raise NotFound("No such alignment kind.")
    tid = _territory_id(form)
    accounts.unalign(session, user, kind, alignment_id)
    flash(request, "flash.unaligned")
    return redirect(f"/admin/alignments?territory={tid}")
