"""JSON routes for the content library, MLR review and signatures, the player and slide events."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse
from pydantic import ValidationError

from parcours.content import clm, review, service, storage
from parcours.content.schemas import (
    CommentCreate,
    CommentRead,
    ContentMeta,
    DiffPage,
    IngestResult,
    PageMessages,
    PageRead,
    SignatureCreate,
    SignatureRead,
    SlideEventBatch,
    VersionDetail,
    VersionRead,
    Withdrawal,
)
from parcours.core.deps import ApiUser, SessionDep
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.models import Role
from parcours.core.settings import get_settings

router = APIRouter(tags=["content"])


def version_detail(session, version) -> VersionDetail:
    content = session.get(service.Content, version.content_id)
    checks = service.check_signatures(session, version)
    return VersionDetail.model_validate(
        {
            **VersionRead.model_validate(version).model_dump(),
            "parent_id": content.parent_id if content else None,
            "pages": [PageRead.model_validate(p) for p in service.pages(session, version.id)],
            "signatures": [
                SignatureRead.model_validate(c.signature).model_copy(update={"valid": c.valid})
                for c in checks
            ],
            "comments": [
                CommentRead.model_validate(c) for c in review.comments(session, version.id)
            ],
        }
    )


def parse_meta(raw: str | None) -> dict:
    """The upload's metadata: a JSON object in a form field, checked like any request body."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Invalid("metadata is not valid JSON.", field="metadata") from exc
    if not isinstance(data, dict):
        raise Invalid("metadata is a JSON object.", field="metadata")
    try:
        meta = ContentMeta.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "metadata", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise Invalid(errors[0]["message"], errors=errors) from exc
    return meta.model_dump(exclude_unset=True)


def receive(upload: UploadFile) -> Path:
    """Copy an upload next to the library (same disk, so the final move is a rename)."""
    incoming = get_settings().content_dir / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=incoming)
    limit = get_settings().content_max_bytes
    written = 0
    try:
        with open(fd, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise Invalid(
                        f"The file is over the {limit // 1_000_000} MB limit.", field="file"
                    )
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def store_upload(session, user, upload: UploadFile, meta: dict, content_id=None) -> VersionRead:
    path = receive(upload)
    parent_id = meta.pop("parent_id", None)
    try:
        version = service.upload(
            session,
            user,
            path,
            upload.filename or "upload",
            meta,
            content_id=content_id,
            parent_id=parent_id,
        )
    finally:
        path.unlink(missing_ok=True)  # moved into the library when accepted
    return version


@router.get("/content", response_model=list[VersionRead])
def list_content(
    user: ApiUser,
    session: SessionDep,
    q: str | None = None,
    state: str | None = None,
    product_id: int | None = None,
    content_type: str | None = None,
    language: str | None = None,
    country: str | None = None,
    kind: str | None = None,
):
    """One row per content item (its newest version you may see), filtered."""
    return service.library(
        session,
        user,
        q=q,
        state=state,
        product_id=product_id,
        content_type=content_type,
        language=language,
        country=country,
        kind=kind,
    )


@router.post("/content", response_model=VersionRead, status_code=201)
def upload_content(
    user: ApiUser,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    metadata: Annotated[str, Form()] = "",
):
    """Upload a file with its metadata (JSON); its pages are rendered in the background."""
    return store_upload(session, user, file, parse_meta(metadata))


@router.get("/content/{content_id}", response_model=list[VersionRead])
def content_versions(content_id: int, user: ApiUser, session: SessionDep):
    """The versions of one content item you may see, newest first."""
    service.get_content(session, user, content_id)
    return service.versions_for(session, user, content_id)


@router.post("/content/{content_id}/versions", response_model=VersionRead, status_code=201)
def new_version(
    content_id: int,
    user: ApiUser,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    metadata: Annotated[str, Form()] = "",
):
    """A new version starts as a draft; the approved one stays in use until it is replaced."""
    service.get_content(session, user, content_id)
    meta = parse_meta(metadata)
    meta.pop("parent_id", None)
    return store_upload(session, user, file, meta, content_id=content_id)


@router.get("/content/{content_id}/stats")
def content_stats(content_id: int, user: ApiUser, session: SessionDep):
    """Times shown, average time per slide and reactions, per version and page."""
    return clm.stats(session, user, content_id)


@router.get("/content-versions/{version_id}", response_model=VersionDetail)
def get_version(version_id: int, user: ApiUser, session: SessionDep):
    return version_detail(session, service.get_version(session, user, version_id))


@router.patch("/content-versions/{version_id}", response_model=VersionDetail)
def update_version(version_id: int, body: ContentMeta, user: ApiUser, session: SessionDep):
    changes = body.model_dump(exclude_unset=True)
    if "parent_id" in changes:
        raise Invalid("parent_id is set when the content is created.", field="parent_id")
    return version_detail(session, service.update_draft(session, user, version_id, **changes))


@router.put("/content-versions/{version_id}/pages/{page}/key-messages", response_model=PageRead)
def page_messages(
    version_id: int, page: int, body: PageMessages, user: ApiUser, session: SessionDep
):
    return service.set_page_messages(session, user, version_id, page, body.key_messages)


@router.delete("/content-versions/{version_id}", status_code=204)
def discard(version_id: int, user: ApiUser, session: SessionDep):
    """Delete a draft nobody reviewed; reviewed versions are kept (withdraw them instead)."""
    service.discard_draft(session, user, version_id)


@router.post("/content-versions/{version_id}/submit", response_model=VersionRead)
def submit(version_id: int, user: ApiUser, session: SessionDep):
    return service.submit_for_review(session, user, version_id)


@router.post("/content-versions/{version_id}/comments", response_model=CommentRead, status_code=201)
def comment(version_id: int, body: CommentCreate, user: ApiUser, session: SessionDep):
    return review.add_comment(session, user, version_id, body.body, body.page)


@router.post(
    "/content-versions/{version_id}/signatures", response_model=SignatureRead, status_code=201
)
def sign(version_id: int, body: SignatureCreate, user: ApiUser, session: SessionDep):
    """Approve or reject as your MLR role; your password signs, bound to the version's hash."""
    try:
        with session.begin_nested():
            return review.sign(
                session,
                user,
                version_id,
                password=body.password,
                decision=body.decision,
                comment=body.comment,
            )
    except review.WrongPassword:
        review.count_wrong_password(session, user)
        session.commit()  # the count survives the error response
        raise


@router.post("/content-versions/{version_id}/withdraw", response_model=VersionRead)
def withdraw(version_id: int, body: Withdrawal, user: ApiUser, session: SessionDep):
    return review.withdraw(session, user, version_id, body.reason)


@router.get("/content-versions/{version_id}/diff", response_model=list[DiffPage])
def diff(version_id: int, user: ApiUser, session: SessionDep, against: int | None = None):
    """Page-by-page text changes against another version (by default the previous one)."""
    if user.role not in (*service.BUILDERS, Role.reviewer):
        raise Forbidden("Version comparisons are for builders and reviewers.")
    new = service.get_version(session, user, version_id)
    old = (
        service.get_version(session, user, against)
        if against
        else review.previous_version(session, new, user)
    )
    if old is None or old.content_id != new.content_id:
        raise NotFound("There is no earlier version of this content to compare with.")
    return review.diff(session, old, new)


@router.get("/content-versions/{version_id}/status")
def version_status(version_id: int, user: ApiUser, session: SessionDep):
    """What an open player polls: may this version still be shown?"""
    return clm.player_status(session, user, version_id)


@router.get("/content-versions/{version_id}/pages/{page}.jpg", response_class=FileResponse)
def page_image(version_id: int, page: int, user: ApiUser, session: SessionDep, thumb: bool = False):
    version = service.get_version(session, user, version_id)
    path = storage.page_image(version, page, thumb=thumb)
    return FileResponse(path, media_type="image/jpeg", headers=storage.FILE_HEADERS)


@router.get("/activities/{activity_id}/content", response_model=list[VersionRead])
def offered(activity_id: int, user: ApiUser, session: SessionDep):
    """Approved content valid today that this rep may present in this call."""
    act = clm.presenting_call(session, user, activity_id)
    return clm.offered(session, user, act)


@router.post("/slide-events", response_model=IngestResult)
def slide_events(body: SlideEventBatch, user: ApiUser, session: SessionDep):
    """Record a batch of slide events; each event id counts once, so resending is safe."""
    return clm.ingest(session, user, [e.model_dump() for e in body.events])


@router.post("/activities/{activity_id}/prefill", status_code=200)
def prefill(activity_id: int, user: ApiUser, session: SessionDep):
    """Fill the call report from the slides shown; the rep then reviews and submits it."""
    act = clm.prefill_call(session, user, activity_id)
    return {
        "activity_id": act.id,
        "product_ids": act.product_ids,
        "key_messages": act.key_messages,
        "duration_min": act.duration_min,
        "subject": act.subject,
        "content_shown": clm.shown_in_call(session, act.id),
    }
