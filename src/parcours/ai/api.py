"""JSON routes for insight: documents, search, questions, feedback; within the caller's access."""

from __future__ import annotations

import json
from datetime import date

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from parcours.ai import assistant, service
from parcours.core.deps import ApiUser, SessionDep
from parcours.core.errors import Forbidden, Invalid

router = APIRouter(tags=["insight"])


class DocumentRead(BaseModel):
    id: int
    source: str
    filename: str
    title: str
    state: str
    error: str | None
    pages: int
    chunks: int
    language: str | None
    category: str | None
    product: str | None
    study: str | None
    doc_date: date | None
    acl: dict


def _document(doc) -> DocumentRead:
    return DocumentRead(
        id=doc.id,
        source=doc.source,
        filename=doc.filename,
        title=doc.title,
        state=doc.state,
        error=doc.error,
        pages=doc.pages,
        chunks=doc.chunks,
        language=doc.language,
        category=doc.category,
        product=doc.product,
        study=doc.study,
        doc_date=doc.doc_date,
        acl={
            "roles": doc.acl_roles,
            "groups": doc.acl_groups,
            "users": doc.acl_users,
            "countries": doc.acl_countries,
        },
    )


@router.get("/insight/documents")
def list_documents(user: ApiUser, session: SessionDep, state: str | None = None):
    """The documents the caller may read, newest change first."""
    return [_document(d) for d in service.library(session, user, state=state)]


@router.get("/insight/documents/{document_id}")
def read_document(document_id: int, user: ApiUser, session: SessionDep) -> DocumentRead:
    return _document(service.get_document(session, user, document_id))


def _list(value: str | None, field: str) -> list[str]:
    if not value:
        return []
    if value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            raise Invalid("Give a JSON list or comma-separated values.", field=field) from None
        if not isinstance(items, list):
            raise Invalid("Give a list.", field=field)
        return [str(i) for i in items]
    return [v.strip() for v in value.split(",") if v.strip()]


@router.post("/insight/documents", status_code=201)
async def upload_documents(request: Request, user: ApiUser, session: SessionDep):
    """Add files (multipart `file`, several allowed) with who may read them (acl_roles,
    acl_groups, acl_users, acl_countries: comma-separated) and metadata. Each file is taken
    or refused on its own: the reply lists both; 422 when none was taken."""
    if not service.can_curate(user):
        raise Forbidden("Your role may ask questions but not add documents.")
    form = await request.form()
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
    if not files:
        raise Invalid("Attach at least one file.", field="file")

    def text(name: str) -> str:
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise Invalid("Send this as a text field, not a file.", field=name)
        return (value or "").strip()

    try:
        users = [int(u) for u in _list(text("acl_users"), "acl_users")]
    except ValueError:
        raise Invalid("User ids are numbers.", field="acl_users") from None
    if any(not 0 < u < 2**31 for u in users):
        raise Invalid("No user has this id.", field="acl_users")
    acl = service.Acl.of(
        _list(text("acl_roles"), "acl_roles"),
        _list(text("acl_groups"), "acl_groups"),
        users,
        _list(text("acl_countries"), "acl_countries"),
    )
    # nobody named means every user: say so on purpose, never by omission
    if not (acl.roles or acl.groups or acl.users) and text("everyone").lower() not in (
        "true",
        "1",
        "yes",
    ):
        raise Invalid(
            "Say who may read: acl_roles, acl_groups or acl_users, or everyone=true.",
            field="acl_roles",
        )
    meta = service.Meta(
        title=text("title") or None,
        category=text("category") or None,
        product=text("product") or None,
        study=text("study") or None,
        language=text("language") or None,
        doc_date=service.when(text("doc_date"), "doc_date"),
    )
    service.check_acl(session, acl)
    service.check_meta(meta)
    added, refused = [], []
    limit = service.get_settings().insight_max_bytes
    for upload in files:
        data = await upload.read(limit + 1)
        try:
            with session.begin_nested():
                doc, _changed = service.add_file(
                    session, user, upload.filename, data, acl=acl, meta=meta
                )
            added.append(_document(doc))
        except Invalid as exc:
            refused.append({"file": upload.filename, "reason": exc.detail})
    if not added:
        raise Invalid(
            "No file was taken.",
            errors=[{"field": "file", "message": f"{r['file']}: {r['reason']}"} for r in refused],
        )
    return {"added": added, "refused": refused}


@router.delete("/insight/documents/{document_id}", status_code=204)
def delete_document(document_id: int, user: ApiUser, session: SessionDep) -> None:
    service.remove(session, user, service.get_document(session, user, document_id))


class SearchHit(BaseModel):
    document_id: int
    title: str
    page: int
    location: str
    text: str
    score: float
    href: str


@router.get("/insight/search")
def search(
    user: ApiUser,
    session: SessionDep,
    q: str = "",
    mode: str = "hybrid",
    k: int = 10,
    assistant_name: str = Query("insight", alias="assistant"),
    product: str = "",
    category: str = "",
    language: str = "",
) -> list[SearchHit]:
    """Passages for a query, best first, only from documents the caller may read."""
    found = assistant.search(
        session,
        user,
        q,
        k=k,
        mode=mode,
        assistant=assistant_name,
        filters={"product": product, "category": category, "language": language},
    )
    return [
        SearchHit(
            document_id=f.document.id,
            title=f.document.title,
            page=f.chunk.page,
            location=f.chunk.location,
            text=f.chunk.text,
            score=f.score,
            href=f.href,
        )
        for f in found
    ]


class AskIn(BaseModel):
    question: str
    assistant: str = "insight"
    filters: dict[str, str] = {}
    language: str | None = None
    hcp_id: int | None = None


class Source(BaseModel):
    n: int
    document_id: int
    title: str
    page: int
    location: str
    href: str


class AnswerOut(BaseModel):
    id: int
    outcome: str
    answer: str | None
    method: str
    sources: list[Source]
    review_state: str | None
    took_ms: int


def _answer(session, user, record) -> AnswerOut:
    found = {f.chunk.id: f for f in assistant.cited(session, user, record)}
    sources = []
    for p in record.passages:
        f = found.get(p["chunk_id"])
        if f is not None:
            sources.append(
                Source(
                    n=p["n"],
                    document_id=f.document.id,
                    title=f.document.title,
                    page=f.chunk.page,
                    location=f.chunk.location,
                    href=f.href,
                )
            )
    readable = assistant.answer_readable(session, user, record)
    return AnswerOut(
        id=record.id,
        outcome=record.outcome,
        # its sentences come from the sources: withheld once one is out of the caller's reach
        answer=record.answer if readable else None,
        method=record.method,
        sources=sources,
        review_state=record.review_state,
        took_ms=record.took_ms,
    )


@router.post("/insight/ask")
def ask(body: AskIn, user: ApiUser, session: SessionDep) -> AnswerOut:
    """An answer from the passages the caller may read, with numbered sources; recorded."""
    record = assistant.ask(
        session,
        user,
        body.question,
        assistant=body.assistant,
        filters=body.filters,
        language=body.language,
        hcp_id=body.hcp_id,
    )
    return _answer(session, user, record)


@router.get("/insight/questions/{question_id}")
def read_question(question_id: int, user: ApiUser, session: SessionDep) -> AnswerOut:
    return _answer(session, user, assistant.get_question(session, user, question_id))


class FeedbackIn(BaseModel):
    feedback: str
    note: str = ""


@router.post("/insight/questions/{question_id}/feedback", status_code=204)
def give_feedback(question_id: int, body: FeedbackIn, user: ApiUser, session: SessionDep) -> None:
    record = assistant.get_question(session, user, question_id)
    assistant.feedback(session, user, record, body.feedback, body.note)
