"""Insight pages: the assistants with cited answers, feedback, the help desk's hand-overs and
the medical review of drafts; helpers the document pages share."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.datastructures import FormData

from parcours.accounts import service as accounts
from parcours.accounts.models import Account
from parcours.ai import assistant, service
from parcours.ai.models import CATEGORIES, InsightDocument, InsightQuestion
from parcours.core.deps import PageUser, SessionDep, require
from parcours.core.errors import DomainError, Forbidden, Invalid, NotFound
from parcours.core.i18n import format_number, translate
from parcours.core.models import Role, User
from parcours.web.pages import (
    Form,
    flash,
    form_text,
    is_id,
    redirect,
    register_messages,
    translate_message,
    user_names,
)
from parcours.web.render import add_templates, is_htmx, language, render, templates

router = APIRouter()
add_templates(__file__)

# who may draft a medical-information answer for an HCP (the assistant's own rule)
MEDINFO_ROLES = (Role.rep, Role.manager, Role.admin, Role.marketing)
INSIGHT_CATEGORIES = tuple(c for c in CATEGORIES if c not in assistant.HELPDESK_CATEGORIES)
ASK_FIELDS = ("question", "hcp_id", "product", "category", "language")
EXCERPT = 320  # characters of a passage shown under a source

register_messages(
    "insight",
    (
        ("Type a question", "insight.err.question_missing"),
        ("The question has no word to search for", "insight.err.question_words"),
        ("Choose the HCP who asked", "insight.err.hcp_missing"),
        ("Medical information requests are drafted", "insight.err.medinfo_role"),
        ("Write the reply", "insight.err.reply_missing"),
        ("An approved answer cannot be empty", "insight.err.answer_empty"),
        ("This answer is not waiting for review", "insight.err.not_pending"),
        ("Approve or reject", "insight.err.decision"),
        ("Only a medical reviewer approves", "insight.err.medical_only"),
        ("reviewed by medical reviewers", "insight.err.medical_only"),
        ("Only admins answer handed-over questions", "insight.err.admin_only"),
        ("The help-desk queue is for admins", "insight.err.admin_only"),
        ("Only the person who asked can rate", "insight.err.feedback_owner"),
        ("Feedback is up or down", "insight.err.feedback"),
        ("Only the person who added this document", "insight.err.not_owner"),
        ("may ask questions but not add documents", "insight.err.not_curator"),
        ("is not a role", "insight.err.role"),
        ("is not a group name", "insight.err.group"),
        ("is not a two-letter country code", "insight.err.country"),
        ("Give a date as YYYY-MM-DD", "insight.err.date"),
        ("Category must be one of", "insight.err.category"),
        ("The file has no name", "insight.err.no_name"),
        # why a file could not be indexed (extract.Unreadable, service.prepare)
        ("password-protected (encrypted Office", "insight.err.office_locked"),
        ("The PDF is password-protected", "insight.err.pdf_locked"),
        ("it is not a valid Office document", "insight.err.office_corrupt"),
        ("The PDF is corrupt", "insight.err.pdf_corrupt"),
        ("The file is corrupt or unreadable", "insight.err.corrupt"),
        ("No text was found in the file", "insight.err.no_text"),
        ("The stored file is missing", "insight.err.file_missing"),
        ("The file unpacks to over", "insight.err.zip_bomb"),
        ("The file is empty", "insight.err.empty_file"),
    ),
)

# service messages that carry a value: (pattern, catalogue key)
_WITH_VALUES = (
    (re.compile(r"^At most (?P<n>\d+) characters\.$"), "insight.err.too_long"),
    (
        re.compile(r"^(?P<name>.+): not a format we index \((?P<kinds>.*)\)\.$"),
        "insight.err.format",
    ),
    (re.compile(r"^(?P<name>.+): the file is empty\.$"), "insight.err.empty"),
    (re.compile(r"^(?P<name>.+): over the (?P<mb>\d+) MB limit\.$"), "insight.err.too_big"),
)


def message(lang: str, text: str) -> str:
    """A service message in lang (English readers keep the service's own, precise wording)."""
    if lang == "en":
        return text
    for pattern, key in _WITH_VALUES:
        found = pattern.match(text)
        if found:
            values = found.groupdict()
            if "n" in values:
                values["n"] = format_number(int(values["n"]), lang)
            return translate(lang, key, **values)
    return translate_message(lang, text, "insight")


def field_errors(request: Request, exc: DomainError, fields: tuple[str, ...]) -> dict[str, str]:
    """Field → message in the user's language; a field the form does not show goes on top."""
    lang = language(request)
    errors: dict[str, str] = {}
    for err in exc.errors or [{"field": "_form", "message": exc.detail}]:
        name = err.get("field") or "_form"
        errors.setdefault(name if name in fields else "_form", message(lang, err["message"]))
    return errors


def _t(request: Request, key: str, **params) -> str:
    return translate(language(request), key, **params)


def _raw(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --- what the templates show ---------------------------------------------------------------

_MARKER = re.compile(r"\s*\[(\d{1,3})\]")


def answer_html(text: str | None, record_id: int, shown: dict[int, str], lang: str) -> Markup:
    """The answer in paragraphs, each [n] a superscript link to its numbered source below
    (plain when the asker may no longer read that source)."""
    out = []
    for para in re.split(r"\n\s*\n", (text or "").strip()):
        if not para.strip():
            continue
        parts, pos = [], 0
        for found in _MARKER.finditer(para):
            parts.append(escape(para[pos : found.start()]))
            n = int(found[1])
            if n in shown:
                label = translate(lang, "insight.cite_label", n=n, title=shown[n])
                parts.append(
                    Markup(
                        '<sup class="ins-cite"><a href="#source-{}-{}" aria-label="{}">{}</a></sup>'
                    ).format(record_id, n, label, n)
                )
            else:
                parts.append(Markup('<sup class="ins-cite ins-cite-gone">{}</sup>').format(n))
            pos = found.end()
        parts.append(escape(para[pos:]))
        body = Markup("").join(parts).replace("\n", Markup("<br>"))
        out.append(Markup("<p>{}</p>").format(body))
    return Markup("").join(out)


def place(location: str | None, lang: str, heading: bool = False) -> str:
    """Where a passage is ("p. 4", "slide 3", a sheet, a heading) in the reader's words;
    as a heading, a page is spelled out ("Page 4")."""
    location = (location or "").strip()
    found = re.fullmatch(r"slide (\d+)", location)
    if found:
        return translate(lang, "insight.slide_n", n=found[1])
    found = re.fullmatch(r"p\. (\d+)", location)
    if found and heading:
        return translate(lang, "insight.page_n", n=found[1])
    return location


def excerpt(text: str, title: str = "", limit: int = EXCERPT) -> str:
    """The start of a passage, without the document's title that many pages repeat."""
    text = " ".join((text or "").split())
    title = " ".join((title or "").split())
    if title and text.startswith(title) and len(text) > len(title):
        text = text[len(title) :].lstrip(" .:-–—")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def access_parts(doc: InsightDocument, lang: str, names: dict[int, str] | None = None) -> list:
    """Who may read a document, as short labels ("Marketing", "group hr", "FR")."""
    parts = [translate(lang, f"role.{r}") for r in doc.acl_roles or []]
    parts += [translate(lang, "insight.access.group", name=g) for g in doc.acl_groups or []]
    parts += [(names or {}).get(u) or f"#{u}" for u in doc.acl_users or []]
    if not parts:
        parts = [translate(lang, "insight.access.everyone")]
    if doc.acl_countries:
        parts.append(translate(lang, "insight.access.in", countries=", ".join(doc.acl_countries)))
    return parts


def file_icon(doc: InsightDocument) -> str:
    suffix = doc.filename.rsplit(".", 1)[-1].lower() if "." in doc.filename else ""
    return {
        "pdf": "file-text",
        "docx": "file-text",
        "pptx": "presentation",
        "xlsx": "file-spreadsheet",
        "html": "file-code",
        "htm": "file-code",
    }.get(suffix, "file")


templates.env.globals.update(
    insight_error=message,
    insight_place=place,
    insight_excerpt=excerpt,
    insight_access=access_parts,
    insight_file_icon=file_icon,
)


def sources_of(session, user: User, record: InsightQuestion) -> list[tuple[int, object]]:
    """(n, Found) for each source of a recorded answer the user may still read."""
    found = {f.chunk.id: f for f in assistant.cited(session, user, record)}
    return [(p["n"], found[p["chunk_id"]]) for p in record.passages if p["chunk_id"] in found]


def _hcp_names(session, viewer: User, ids) -> dict[int, str]:
    """Names of the HCPs the viewer may read (a reviewer reads none: "an HCP")."""
    ids = {i for i in ids if i}
    if not ids:
        return {}
    rows = session.scalars(
        select(Account).where(Account.id.in_(ids), accounts.readable(session, viewer))
    )
    return {a.id: accounts.display_name(a) for a in rows}


def answer_context(request: Request, session, user: User, record: InsightQuestion) -> dict:
    lang = language(request)
    sources = sources_of(session, user, record)
    shown = {n: f.document.title for n, f in sources}
    # the answer's sentences come from its sources: not shown once one is out of reach
    withheld = not assistant.answer_readable(session, user, record)
    return {
        "record": record,
        "sources": sources,
        "answer_withheld": withheld,
        "answer_html": (
            Markup("<p>") + translate(lang, "insight.answer_withheld") + Markup("</p>")
            if withheld
            else answer_html(record.answer, record.id, shown, lang)
        ),
        "hcp_names": _hcp_names(session, user, [record.hcp_id]),
        "people": user_names(session, [record.user_id, record.handled_by, record.reviewed_by]),
        "can_rate": record.user_id == user.id,
    }


# --- the assistants --------------------------------------------------------------------------


def assistants_for(user: User) -> tuple[str, ...]:
    if user.role in MEDINFO_ROLES:
        return ("insight", "helpdesk", "medinfo")
    return ("insight", "helpdesk")


def _assistant(user: User, name: str | None) -> str:
    return name if name in assistants_for(user) else "insight"


def _filter_choices(session, user: User, name: str) -> dict:
    """Products of the documents this assistant reads for the user; its categories."""
    D = InsightDocument
    stmt = service.readable(session, user).with_only_columns(D.product).distinct()
    stmt = stmt.where(D.product.is_not(None))
    if name == "helpdesk":
        stmt = stmt.where(D.category.in_(assistant.HELPDESK_CATEGORIES))
        categories = assistant.HELPDESK_CATEGORIES
    elif name == "medinfo":
        stmt = stmt.where(D.source == "content")
        categories = ()
    else:
        stmt = stmt.where(D.category.is_(None) | D.category.not_in(assistant.HELPDESK_CATEGORIES))
        categories = INSIGHT_CATEGORIES
    return {"products": sorted(session.scalars(stmt)), "categories": categories}


def _ask_values(source) -> dict:
    """The question box and its filters, from a posted form or the query string."""
    values = {}
    for name in ("question", "product", "category", "language", "hcp_id", "hcp_q"):
        value = source.get(name)
        values[name] = value.strip() if isinstance(value, str) else ""
    return values


def _readable_hcp(session, user: User, value: str) -> Account | None:
    if not is_id(value):
        return None
    try:
        account = accounts.get_account(session, user, int(value))
    except NotFound:
        return None
    return account if account.kind == "hcp" else None


def _hcp_options(session, user: User, q: str, chosen: Account | None) -> list[Account]:
    found = []
    if q:
        filters = accounts.SearchFilters(q=q[:100], kind="hcp")
        found = accounts.search_accounts(session, user, filters, limit=8).items
    if chosen is not None:
        found = [chosen, *[a for a in found if a.id != chosen.id]]
    return found


def _counts(session, user: User) -> dict:
    """Queues waiting for this user: hand-overs (admins), drafts to review (reviewers)."""
    counts: dict = {}
    if user.role == Role.admin:
        counts["handovers"] = len(assistant.handovers(session, user))
    if user.role == Role.reviewer:
        counts["review"] = len(assistant.review_queue(session, user))
    return counts


def ask_context(session, user: User, name: str, values: dict, errors: dict, **extra) -> dict:
    hcp = _readable_hcp(session, user, values["hcp_id"]) if name == "medinfo" else None
    ctx = {
        "assistant_name": name,
        "assistants": assistants_for(user),
        "values": values,
        "errors": errors,
        "hcp": hcp,
        "hcp_options": _hcp_options(session, user, values["hcp_q"], hcp)
        if name == "medinfo"
        else [],
        "history": assistant.history(session, user, name),
        "filtered": any(values[k] for k in ("product", "category", "language")),
        "record": None,
        **_filter_choices(session, user, name),
    }
    ctx.update(extra)
    return ctx


@router.get("/insight")
def ask_page(request: Request, user: PageUser, session: SessionDep, assistant: str = "insight"):
    name = _assistant(user, assistant)
    ctx = ask_context(session, user, name, _ask_values(request.query_params), {})
    ctx["counts"] = _counts(session, user)
    return render(request, "ai/ask.html", ctx)


@router.post("/insight/ask")
def ask_post(request: Request, user: PageUser, session: SessionDep, form: Form):
    name = _assistant(user, form_text(form, "assistant"))
    values = _ask_values(form)
    errors: dict[str, str] = {}
    hcp = None
    if name == "medinfo" and values["hcp_id"]:
        hcp = _readable_hcp(session, user, values["hcp_id"])
        if hcp is None:
            errors["hcp_id"] = _t(request, "insight.err.hcp_unknown")
    record = None
    if not errors:
        try:
            record = assistant.ask(
                session,
                user,
                values["question"],
                assistant=name,
                filters={k: values[k] for k in ("product", "category", "language")},
                hcp_id=hcp.id if hcp else None,
            )
        except Invalid as exc:
            errors = field_errors(request, exc, ASK_FIELDS)
    if record is not None:
        values["question"] = ""  # the box is ready for the next question
    ctx = ask_context(session, user, name, values, errors)
    if record is not None:
        ctx.update(answer_context(request, session, user, record))
    status = 422 if errors else 200
    if is_htmx(request):
        return render(request, "ai/_partials/asked.html", ctx, status=status)
    ctx["counts"] = _counts(session, user)
    return render(request, "ai/ask.html", ctx, status=status)


@router.get("/insight/hcps")
def hcp_options(
    request: Request, user: PageUser, session: SessionDep, hcp_q: str = "", hcp_id: str = ""
):
    """The HCPs matching a name, to choose who asked a medical-information question."""
    if user.role not in MEDINFO_ROLES:
        raise Forbidden("Medical information requests are drafted by field teams.")
    chosen = _readable_hcp(session, user, hcp_id)
    ctx = {
        "hcp_options": _hcp_options(session, user, hcp_q.strip(), chosen),
        "hcp": chosen,
        "values": {"hcp_q": hcp_q.strip(), "hcp_id": hcp_id},
    }
    return render(request, "ai/_partials/hcp_options.html", ctx)


@router.get("/insight/questions/{question_id}")
def question_page(request: Request, question_id: int, user: PageUser, session: SessionDep):
    record = assistant.get_question(session, user, question_id)
    ctx = answer_context(request, session, user, record)
    return render(request, "ai/question.html", ctx)


@router.post("/insight/questions/{question_id}/feedback")
def feedback_post(
    request: Request, question_id: int, user: PageUser, session: SessionDep, form: Form
):
    record = assistant.get_question(session, user, question_id)
    errors: dict[str, str] = {}
    try:
        assistant.feedback(session, user, record, form_text(form, "feedback"), _raw(form, "note"))
    except Invalid as exc:
        errors = field_errors(request, exc, ("feedback", "note"))
    if is_htmx(request):
        ctx = {"record": record, "errors": errors, "note": _raw(form, "note"), "can_rate": True}
        return render(request, "ai/_partials/feedback.html", ctx, status=422 if errors else 200)
    if errors:
        flash(request, "insight.flash.feedback_failed", "error")
    else:
        flash(request, "insight.flash.feedback")
    return redirect(f"/insight/questions/{record.id}")


# --- help desk hand-overs and medical review -------------------------------------------------


def _handover_context(session, user: User, **extra) -> dict:
    rows = assistant.handovers(session, user, open_only=False)
    ctx = {
        "open": [r for r in rows if r.reply is None],
        "answered": [r for r in rows if r.reply is not None][:20],
        "people": user_names(session, [r.user_id for r in rows] + [r.handled_by for r in rows]),
        "reply_errors": {},
        "reply_values": {},
    }
    ctx.update(extra)
    return ctx


@router.get("/insight/handovers")
def handovers_page(request: Request, user: PageUser, session: SessionDep):
    require(user, Role.admin)
    return render(request, "ai/handovers.html", _handover_context(session, user))


@router.post("/insight/questions/{question_id}/reply")
def reply_post(request: Request, question_id: int, user: PageUser, session: SessionDep, form: Form):
    require(user, Role.admin)
    record = assistant.get_question(session, user, question_id)
    body = _raw(form, "reply")
    errors: dict[str, str] = {}
    try:
        assistant.reply(session, user, record, body)
    except Invalid as exc:
        errors = field_errors(request, exc, ("reply",))
    if is_htmx(request):
        ctx = {
            "q": record,
            "people": user_names(session, [record.user_id, record.handled_by]),
            "errors": errors,
            "value": body,
        }
        headers = None
        if not errors:
            headers = {"X-Toast": quote(_t(request, "insight.flash.replied"))}
        return render(
            request,
            "ai/_partials/handover.html",
            ctx,
            status=422 if errors else 200,
            headers=headers,
        )
    if errors:
        ctx = _handover_context(
            session, user, reply_errors={record.id: errors}, reply_values={record.id: body}
        )
        return render(request, "ai/handovers.html", ctx, status=422)
    flash(request, "insight.flash.replied")
    return redirect("/insight/handovers")


def _review_items(request: Request, session, user: User, records) -> list[dict]:
    hcps = _hcp_names(session, user, [r.hcp_id for r in records])
    people = user_names(session, [r.user_id for r in records])
    items = []
    for r in records:
        ctx = answer_context(request, session, user, r)
        items.append(
            {
                "q": r,
                "sources": ctx["sources"],
                "answer_html": ctx["answer_html"],
                "hcp": hcps.get(r.hcp_id),
                "asker": people.get(r.user_id),
            }
        )
    return items


def _may_review(user: User) -> bool:
    return user.role == Role.reviewer and (user.review_role or "medical") == "medical"


@router.get("/insight/review")
def review_page(request: Request, user: PageUser, session: SessionDep):
    records = assistant.review_queue(session, user)
    ctx = {
        "items": _review_items(request, session, user, records),
        "may_review": _may_review(user),
        "review_errors": {},
        "review_values": {},
    }
    return render(request, "ai/review.html", ctx)


@router.post("/insight/questions/{question_id}/review")
def review_post(
    request: Request, question_id: int, user: PageUser, session: SessionDep, form: Form
):
    record = assistant.get_question(session, user, question_id)
    decision = form_text(form, "decision")
    answer = _raw(form, "answer") if "answer" in form else None
    try:
        with session.begin_nested():
            assistant.review(
                session, user, record, decision, answer if decision == "approved" else None
            )
    except Invalid as exc:
        session.refresh(record)
        records = assistant.review_queue(session, user)
        ctx = {
            "items": _review_items(request, session, user, records),
            "may_review": _may_review(user),
            "review_errors": {record.id: field_errors(request, exc, ("answer", "decision"))},
            "review_values": {record.id: answer},
        }
        return render(request, "ai/review.html", ctx, status=422)
    flash(request, f"insight.flash.review_{decision}")
    return redirect("/insight/review")
