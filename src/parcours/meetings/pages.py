"""HTML routes for remote meetings: scheduling from HCP 360, the host's meeting page and room,
and the HCP's side (personal link, passcode and device check, waiting room, room)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from parcours.accounts import service as accounts
from parcours.accounts.models import Account
from parcours.activities.models import Activity
from parcours.consent import service as consent
from parcours.content import clm
from parcours.content import storage as content_storage
from parcours.content.models import ContentVersion
from parcours.core import audit, i18n
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from parcours.core.models import User
from parcours.core.security import csrf_matches
from parcours.core.settings import get_settings
from parcours.meetings import room, service
from parcours.meetings.models import Meeting
from parcours.web.pages import Form, form_errors, form_text, redirect, register_messages
from parcours.web.render import add_templates, language, render

router = APIRouter()

add_templates(__file__)

register_messages(
    "meetings",
    (
        ("Invite one to", "meetings.err.account_ids"),
        ("Choose a start between now", "meetings.err.starts_at"),
        ("A meeting lasts 5 to 120 minutes", "meetings.err.duration_min"),
        ("A title is at most 200", "meetings.err.title"),
        ("This passcode is not the one", "meetings.err.passcode"),
        ("Too many wrong passcodes for this link", "meetings.err.link_blocked"),
        ("Too many wrong passcodes from your network", "meetings.err.address_blocked"),
        ("The host has locked this meeting", "meetings.err.locked"),
        ("The host has not let you in", "meetings.err.refused"),
        ("Choose an approved meeting invitation", "meetings.err.invitation"),
        ("Only a meeting that has not started", "meetings.err.started"),
        ("Only a call you planned", "meetings.err.call"),
        ("This planned call is with another HCP", "meetings.err.call_account"),
        ("This call already has its meeting", "meetings.err.call_taken"),
    ),
)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
COOKIE = "parcours_meeting"


def _zone() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


# --- the rep: scheduling and the meeting page ---------------------------------------------------


def _schedule_ctx(session, user, account_id: int, values: dict, errors: dict) -> dict:
    account = accounts.get_account(session, user, account_id)
    decision = consent.consent_for(session, account_id, "remote_meeting")
    from parcours.email import service as email

    invitations = email.templates_for(session, user, invitations=True)
    return {
        "account": account,
        "name": accounts.display_name(account),
        "consented": decision.allowed,
        "consent_reason": decision.reason,
        "invitations": [(v.id, v.title) for v in invitations],
        "values": values,
        "errors": errors,
    }


@router.get("/accounts/{account_id}/meetings/new")
def schedule_page(
    request: Request, account_id: int, user: PageUser, session: SessionDep, call: str = ""
):
    require(user, *service.HOSTS)
    soon = datetime.now(_zone()).replace(second=0, microsecond=0) + timedelta(minutes=10)
    values = {"date": soon.date().isoformat(), "time": soon.strftime("%H:%M"), "duration_min": "15"}
    if call.isdigit():  # from a planned call: its time, kept as the meeting's call
        act = session.get(Activity, int(call))
        if act is not None and act.owner_id == user.id and act.status == "planned":
            local = act.start_at.astimezone(_zone())
            values.update(
                date=local.date().isoformat(),
                time=local.strftime("%H:%M"),
                duration_min=str(act.duration_min or 15),
                call_id=str(act.id),
            )
    return render(
        request, "meetings/schedule.html", _schedule_ctx(session, user, account_id, values, {})
    )


@router.post("/accounts/{account_id}/meetings")
def schedule(request: Request, account_id: int, user: PageUser, session: SessionDep, form: Form):
    require(user, *service.HOSTS)
    keys = ("date", "time", "duration_min", "title", "invitation_id", "call_id")
    values = {k: form_text(form, k) for k in keys}
    try:
        starts, duration = _when(values)
        invitation, call = values["invitation_id"], values["call_id"]
        if invitation and not invitation.isdigit():
            raise Invalid("Choose an approved meeting invitation template.", field="invitation_id")
        if call and not call.isdigit():
            raise Invalid(
                "Only a call you planned and not yet held can become a meeting.", field="call_id"
            )
        with session.begin_nested():
            meeting, codes = service.schedule(
                session,
                user,
                account_ids=[account_id],
                starts_at=starts,
                duration_min=duration,
                title=values["title"],
                invitation_id=int(invitation) if invitation else None,
                call_id=int(call) if call else None,
            )
    except (Invalid, Conflict) as exc:
        ctx = _schedule_ctx(
            session, user, account_id, values, form_errors(request, exc, "meetings")
        )
        return render(request, "meetings/schedule.html", ctx, status=exc.status)
    # passcodes are kept only hashed: the host sees them once, to pass them on
    request.session["meeting_codes"] = {str(k): v for k, v in codes.items()}
    return redirect(f"/meetings/{meeting.id}")


def _when(values: dict) -> tuple[datetime, int]:
    """The start (in the lab's time zone) and duration typed in a form."""
    try:
        starts = datetime.fromisoformat(f"{values['date']}T{values['time']}")
    except ValueError as exc:
        raise Invalid(
            "Choose a start between now and six months ahead.", field="starts_at"
        ) from exc
    if not values["duration_min"].isdigit():
        raise Invalid("A meeting lasts 5 to 120 minutes.", field="duration_min")
    return starts.replace(tzinfo=_zone()), int(values["duration_min"])


@router.post("/meetings/{meeting_id}/reschedule")
def reschedule(request: Request, meeting_id: int, user: PageUser, session: SessionDep, form: Form):
    values = {k: form_text(form, k) for k in ("date", "time", "duration_min")}
    try:
        starts, duration = _when(values)
        with session.begin_nested():
            service.reschedule(session, user, meeting_id, starts_at=starts, duration_min=duration)
    except (Invalid, Conflict) as exc:
        errors = form_errors(request, exc, "meetings")
        return _meeting(request, session, user, meeting_id, values, errors, status=exc.status)
    request.session["flash"] = {"key": "meetings.flash.moved", "kind": "success"}
    return redirect(f"/meetings/{meeting_id}")


@router.post("/meetings/{meeting_id}/cancel")
def cancel(request: Request, meeting_id: int, user: PageUser, session: SessionDep, form: Form):
    try:
        with session.begin_nested():
            service.cancel(session, user, meeting_id)
    except Conflict as exc:
        errors = form_errors(request, exc, "meetings")
        return _meeting(request, session, user, meeting_id, {}, errors, status=exc.status)
    request.session["flash"] = {"key": "meetings.flash.cancelled", "kind": "success"}
    return redirect(f"/meetings/{meeting_id}")


@router.get("/meetings/{meeting_id}")
def meeting_page(request: Request, meeting_id: int, user: PageUser, session: SessionDep):
    return _meeting(request, session, user, meeting_id, {}, {})


def _meeting(request, session, user, meeting_id: int, values: dict, errors: dict, status=200):
    meeting = service.hosted(session, user, meeting_id)
    if "meeting" in errors:  # about the meeting as a whole: said on top of the page
        errors = {**errors, "_form": errors["meeting"]}
    codes = request.session.pop("meeting_codes", {}) if not errors else {}
    people = [
        {"att": a, "link": service.link(a), "code": codes.get(str(a.id))}
        for a in service.attendees(session, meeting.id)
    ]
    local = meeting.starts_at.astimezone(_zone())
    defaults = {
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "duration_min": str(meeting.duration_min),
    }
    ctx = {
        "meeting": meeting,
        "people": people,
        "values": {**defaults, **values},
        "errors": errors,
    }
    return render(request, "meetings/meeting.html", ctx, status=status)


@router.get("/meetings/{meeting_id}/room")
def host_room(request: Request, meeting_id: int, user: PageUser, session: SessionDep):
    meeting = service.hosted(session, user, meeting_id)
    if meeting.state in ("ended", "cancelled"):
        return redirect(f"/meetings/{meeting.id}")
    act = session.get(Activity, meeting.activity_id)
    decks = [
        {"id": v.id, "title": v.title, "pages": v.page_count or 1}
        for v in clm.offered(session, user, act)
    ]
    config = _config(request, meeting, service.ticket(room.HOST, meeting.id), host=True)
    config["names"] = {f"a{a.id}": a.display_name for a in service.attendees(session, meeting.id)}
    config.update(
        decks=decks,
        pageUrl="/content/versions/{v}/pages/{p}.jpg",
        callUrl=f"/calls/{meeting.activity_id}",
    )
    return render(
        request,
        "meetings/room.html",
        {"meeting": meeting, "config": config, "host": True, "decks": decks},
        headers=NO_STORE,
    )


def _config(
    request: Request, meeting: Meeting, ticket: str, *, host: bool, lang: str | None = None
) -> dict:
    lang = lang or language(request)
    words = (
        "waiting", "admitted", "refused", "removed", "locked", "ended", "connecting",
        "connected", "in_room", "admit", "refuse", "remove", "mute", "nobody_waiting",
        "camera_off", "no_camera", "host_left", "replaced", "slide",
    )  # fmt: skip
    return {
        "meetingId": meeting.id,
        "ticket": ticket,
        "socket": f"/ws/meetings/{meeting.id}?ticket={ticket}",
        "host": host,
        "iceServers": get_settings().meeting_ice_servers,
        "words": {w: i18n.translate(lang, f"meetings.js.{w}") for w in words},
    }


# --- the HCP: personal link, passcode, waiting room and room -----------------------------------


def _guest_ctx(request: Request, token: str, att, meeting, errors: dict | None = None) -> dict:
    return {
        "token": token,
        "att": att,
        "meeting": meeting,
        "errors": errors or {},
        "starts": meeting.starts_at.astimezone(_zone()),
    }


def _public(request: Request, name: str, ctx: dict, status: int = 200, lang: str | None = None):
    """An HCP's page: the bare layout even where a user of parcours is signed in, in the
    HCP's own language when we know it (else what their browser asks for)."""
    lang = lang or i18n.pick_language(request.headers.get("accept-language"))
    words = {
        "lang": lang,
        "t": lambda key, **kw: i18n.translate(lang, key, **kw),
        "fdate": lambda v, with_time=False: i18n.format_date(v, lang, with_time),
        "ftime": lambda v: i18n.format_time(v, lang),
    }
    return render(request, name, {**ctx, **words, "user": None}, status=status, headers=NO_STORE)


def _hcp_lang(session, att) -> str | None:
    account = session.get(Account, att.account_id)
    preferred = ((account.preferred_language if account else None) or "")[:2].lower()
    return preferred if preferred in i18n.LANGUAGES else None


@router.get("/m/{token}", include_in_schema=False)
def join_page(request: Request, token: str, session: SessionDep):
    try:
        att, meeting = service.attendee_for_token(session, token)
    except NotFound as exc:
        return _public(request, "meetings/gone.html", {"detail": exc.detail}, status=404)
    ctx = _guest_ctx(request, token, att, meeting)
    return _public(request, "meetings/join.html", ctx, lang=_hcp_lang(session, att))


@router.post("/m/{token}", include_in_schema=False)
def join(request: Request, token: str, session: SessionDep, form: Form):
    try:
        att, meeting = service.attendee_for_token(session, token)
    except NotFound as exc:
        return _public(request, "meetings/gone.html", {"detail": exc.detail}, status=404)
    audit.bind_actor(session, None, f"HCP {att.account_id} (meeting link)")
    address = request.client.host if request.client else "unknown"
    try:
        if not csrf_matches(request.session.get("csrf"), form_text(form, "_csrf")):
            raise Forbidden("The form expired. Reload the page and try again.")
        if att.state in ("removed", "refused"):
            raise Forbidden("The host has not let you in to this meeting.")
        # no savepoint: a wrong passcode is counted, and kept, whatever the answer
        service.check_passcode(session, att, form_text(form, "passcode"), address)
    except DomainError as exc:
        session.commit()
        errors = form_errors(request, exc, "meetings")
        if "passcode" not in errors:
            errors = {"passcode": next(iter(errors.values()))}
        ctx = _guest_ctx(request, token, att, meeting, errors)
        lang = _hcp_lang(session, att)
        return _public(request, "meetings/join.html", ctx, status=exc.status, lang=lang)
    response = redirect(f"/m/{token}/room")
    response.set_cookie(
        f"{COOKIE}_{att.id}",
        service.ticket(f"a{att.id}", meeting.id),
        max_age=service.TICKET_S,
        httponly=True,
        samesite="strict",
        secure=get_settings().cookie_secure,
        path=f"/m/{token}",
    )
    return response


@router.get("/m/{token}/room", include_in_schema=False)
def guest_room(request: Request, token: str, session: SessionDep):
    try:
        att, meeting = service.attendee_for_token(session, token)
    except NotFound as exc:
        return _public(request, "meetings/gone.html", {"detail": exc.detail}, status=404)
    ticket = request.cookies.get(f"{COOKIE}_{att.id}", "")
    try:
        peer, meeting_id = service.read_ticket(ticket)
    except NotFound:
        return redirect(f"/m/{token}")
    if peer != f"a{att.id}" or meeting_id != meeting.id:
        return redirect(f"/m/{token}")
    lang = _hcp_lang(session, att)
    config = _config(request, meeting, ticket, host=False, lang=lang)
    host = session.get(User, meeting.host_id)
    names = {f"a{a.id}": a.display_name for a in service.attendees(session, meeting.id)}
    config.update(
        pageUrl=f"/m/{token}/slides/{{v}}/{{p}}.jpg", names={**names, "host": host.full_name}
    )
    ctx = {"meeting": meeting, "config": config, "host": False, "att": att, "token": token}
    return _public(request, "meetings/room.html", ctx, lang=lang)


@router.post("/m/{token}/rating", include_in_schema=False)
def rating(request: Request, token: str, session: SessionDep, form: Form):
    """The short rating asked of the HCP when the meeting ends."""
    try:
        if not csrf_matches(request.session.get("csrf"), form_text(form, "_csrf")):
            raise Forbidden("The form expired. Reload the page and try again.")
        with session.begin_nested():
            att = service.rate(session, token, form_text(form, "rating"))
    except DomainError as exc:
        ctx = {"detail": exc.detail, "status": exc.status}
        return _public(request, "meetings/rated.html", ctx, status=exc.status)
    return _public(request, "meetings/rated.html", {"detail": None}, lang=_hcp_lang(session, att))


@router.get("/m/{token}/slides/{version_id}/{page}.jpg", include_in_schema=False)
def guest_slide(request: Request, token: str, version_id: int, page: int, session: SessionDep):
    """A page of content the host put on screen in this meeting, for this meeting's guests."""
    att, meeting = service.attendee_for_token(session, token)
    if att.state != "admitted" or not room.shown_in_room(meeting.id, version_id):
        raise NotFound("This slide is not shown in your meeting.")
    version = session.get(ContentVersion, version_id)
    path = content_storage.page_image(version, page)
    if not path.is_file():
        raise NotFound("This slide is not shown in your meeting.")
    return FileResponse(path, media_type="image/jpeg", headers=NO_STORE)
