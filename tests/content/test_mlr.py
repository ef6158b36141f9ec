"""MLR review through the services: every state change, every refused one, signatures, audit."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parcours.content import clm, review, service, storage, tasks
from parcours.content.models import ContentVersion, Signature
from parcours.core import audit
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound
from parcours.core.models import AuditRecord

from content_factories import (
    acting,
    approve,
    approved_version,
    incoming_file,
    sign_as,
    submit,
    upload_version,
)
from factories import create_user


def signature_count(session, version) -> int:
    return session.scalar(
        select(func.count()).select_from(Signature).where(Signature.version_id == version.id)
    )


def in_review(session, mlr, **meta) -> ContentVersion:
    version = upload_version(session, mlr, pages=2, **meta)
    return submit(session, mlr, version)


# ---------------------------------------------------------------- draft → in review


def test_a_draft_goes_to_review_only_once_rendered(session, mlr):
    version = upload_version(session, mlr, pages=2, render=False)
    assert (version.state, version.render_state, version.number) == ("draft", "queued", 1)

    with pytest.raises(Conflict) as exc:
        service.submit_for_review(session, mlr.marketing, version.id)
    assert exc.value.errors[0]["field"] == "file"
    assert version.state == "draft"

    tasks.render_with(session, version.id)
    assert version.render_state == "ready" and version.page_count == 2
    submit(session, mlr, version)
    assert version.state == "in_review" and version.submitted_at is not None

    with pytest.raises(Conflict):  # in review already
        submit(session, mlr, version)


@pytest.mark.parametrize("role", ["rep", "reviewer", "manager"])
def test_only_builders_upload_and_submit(session, mlr, role):
    user = {"rep": mlr.rep, "reviewer": mlr.medical}.get(role) or create_user(session, role)
    draft = upload_version(session, mlr, pages=1)
    file = incoming_file()
    file.write_bytes(b"%PDF-1.4 whatever")
    with pytest.raises(Forbidden):
        service.upload(session, user, file, "deck.pdf", {"title": "x"})
    assert file.exists()  # nothing was taken into the library
    with pytest.raises(Forbidden):
        service.submit_for_review(session, user, draft.id)
    with pytest.raises(Forbidden):
        service.update_draft(session, user, draft.id, title="Changed")
    assert draft.state == "draft" and draft.title == "Cardiozen launch deck"


def test_admin_builds_content_too(session, mlr):
    version = upload_version(session, mlr, pages=1, by=mlr.admin)
    with acting(session, mlr.admin):
        service.submit_for_review(session, mlr.admin, version.id)
    assert version.state == "in_review"


def test_a_file_changed_before_submission_is_not_sent_to_review(session, mlr):
    version = upload_version(session, mlr, pages=1)
    original = storage.original_path(version)
    original.write_bytes(original.read_bytes() + b"\n% tampered")
    with pytest.raises(Conflict) as exc:
        submit(session, mlr, version)
    assert exc.value.errors[0]["field"] == "file" and version.state == "draft"


# ---------------------------------------------------------------- signatures


def test_two_signatures_leave_it_in_review_the_third_approves(session, mlr):
    version = in_review(session, mlr)
    assert review.review_inbox(session, mlr.medical) == [version]

    sign_as(session, mlr.medical, version)
    assert version.state == "in_review"
    assert review.review_inbox(session, mlr.medical) == []
    assert review.review_inbox(session, mlr.legal) == [version]
    sign_as(session, mlr.legal, version)
    assert version.state == "in_review" and version.decided_at is None
    assert not service.presentable(session, version)

    sig = sign_as(session, mlr.regulatory, version)
    assert version.state == "approved" and version.decided_at is not None
    assert sig.printed_name == "Rémi Regulatory" and sig.role == "regulatory"
    assert sig.meaning == "Approved as regulatory reviewer"
    assert sig.signed_hash == service.manifest_hash(session, version)
    assert service.presentable(session, version)
    service.require_presentable(session, version)
    assert [c.valid for c in service.check_signatures(session, version)] == [True, True, True]


def test_only_the_required_roles_sign(session, mlr):
    version = in_review(session, mlr, required_roles=["medical", "legal"])
    with pytest.raises(Forbidden):
        sign_as(session, mlr.regulatory, version)
    assert signature_count(session, version) == 0
    assert review.review_inbox(session, mlr.regulatory) == []

    sign_as(session, mlr.medical, version)
    sign_as(session, mlr.legal, version)
    assert version.state == "approved"


def test_one_signature_per_role(session, mlr):
    version = in_review(session, mlr)
    sign_as(session, mlr.medical, version)
    second_doctor = create_user(session, "reviewer", review_role="medical")
    with pytest.raises(Conflict):
        sign_as(session, second_doctor, version)
    with pytest.raises(Conflict):
        sign_as(session, mlr.medical, version, "rejected", comment="Changed my mind")
    assert signature_count(session, version) == 1 and version.state == "in_review"


def test_a_rejection_needs_a_comment_and_ends_the_review(session, mlr):
    version = in_review(session, mlr)
    sign_as(session, mlr.medical, version)
    for comment in (None, "", "   "):
        with pytest.raises(Invalid) as exc:
            sign_as(session, mlr.legal, version, "rejected", comment=comment)
        assert exc.value.errors[0]["field"] == "comment"
    assert signature_count(session, version) == 1 and version.state == "in_review"

    sig = sign_as(session, mlr.legal, version, "rejected", comment="Claim on page 2 unsupported")
    assert version.state == "rejected" and version.decided_at is not None
    assert sig.decision == "rejected" and sig.meaning == "Rejected as legal reviewer"
    assert not service.presentable(session, version)
    with pytest.raises(Conflict):  # rejected is final: nobody approves it afterwards
        sign_as(session, mlr.regulatory, version)
    with pytest.raises(Conflict):
        submit(session, mlr, version)
    with pytest.raises(Conflict):
        service.update_draft(session, mlr.marketing, version.id, title="Fixed")


def test_an_unknown_decision_is_refused(session, mlr):
    version = in_review(session, mlr)
    with pytest.raises(Invalid) as exc:
        sign_as(session, mlr.medical, version, "maybe")
    assert exc.value.errors[0]["field"] == "decision"


@pytest.mark.parametrize("password", ["wrong-password", "", "correct-horse-battery "])
def test_a_wrong_password_signs_nothing(session, mlr, password):
    version = in_review(session, mlr)
    trail_before = audit.head(session)
    with pytest.raises(Invalid) as exc:
        sign_as(session, mlr.medical, version, password=password)
    assert exc.value.errors[0]["field"] == "password"
    assert signature_count(session, version) == 0
    assert version.state == "in_review"
    assert audit.head(session) == trail_before  # not even an audit record of an attempt


def test_a_reviewer_without_a_review_role_cannot_sign(session, mlr):
    version = in_review(session, mlr)
    for review_role in (None, "marketing"):
        reviewer = create_user(session, "reviewer", review_role=review_role)
        with pytest.raises(Forbidden):
            sign_as(session, reviewer, version)
        assert review.review_inbox(session, reviewer) == []
    assert signature_count(session, version) == 0


@pytest.mark.parametrize("who", ["rep", "marketing", "admin"])
def test_only_reviewers_sign(session, mlr, who):
    version = in_review(session, mlr)
    user = getattr(mlr, who)
    with pytest.raises(Forbidden):
        sign_as(session, user, version)
    assert signature_count(session, version) == 0


def test_drafts_are_not_signed(session, mlr):
    draft = upload_version(session, mlr, pages=1)
    with pytest.raises(NotFound):  # a reviewer does not even see drafts
        sign_as(session, mlr.medical, draft)
    assert signature_count(session, draft) == 0


def test_comments_while_in_review(session, mlr):
    version = in_review(session, mlr)
    with acting(session, mlr.legal):
        comment = review.add_comment(session, mlr.legal, version.id, "Add a reference", page=2)
    assert (comment.role, comment.page) == ("legal", 2)
    with pytest.raises(Forbidden):
        review.add_comment(session, mlr.rep, version.id, "Nice")
    with pytest.raises(Invalid):
        review.add_comment(session, mlr.legal, version.id, "Page three", page=3)


# ---------------------------------------------------------------- approved → withdrawn / expired


def test_only_an_admin_withdraws_and_says_why(session, mlr):
    version = approved_version(session, mlr, pages=1)
    for user in (mlr.marketing, mlr.medical, mlr.rep):
        with pytest.raises(Forbidden):
            review.withdraw(session, user, version.id, "Outdated")
    for reason in ("", "  "):
        with pytest.raises(Invalid) as exc:
            review.withdraw(session, mlr.admin, version.id, reason)
        assert exc.value.errors[0]["field"] == "reason"
    assert version.state == "approved"

    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, version.id, "Safety update from the agency")
    assert version.state == "withdrawn"
    assert (version.ended_by, version.end_reason) == (mlr.admin.id, "Safety update from the agency")
    assert version.ended_at is not None
    # at once: not presentable, not offered, the player is told
    assert not service.presentable(session, version)
    with pytest.raises(Conflict, match="withdrawn"):
        service.require_presentable(session, version)
    assert clm.offered(session, mlr.rep) == []
    assert clm.player_status(session, mlr.rep, version.id)["presentable"] is False
    assert service.library(session, mlr.rep) == []


def test_only_approved_content_is_withdrawn(session, mlr):
    draft = upload_version(session, mlr, pages=1)
    with pytest.raises(Conflict):
        review.withdraw(session, mlr.admin, draft.id, "No")
    submit(session, mlr, draft)
    with pytest.raises(Conflict):
        review.withdraw(session, mlr.admin, draft.id, "No")
    assert draft.state == "in_review"


def _try_every_way_back(session, mlr, version) -> None:
    state = version.state
    with pytest.raises(Conflict):
        review.withdraw(session, mlr.admin, version.id, "Again")
    with pytest.raises(Conflict):
        sign_as(session, mlr.medical, version)
    with pytest.raises(Conflict):
        submit(session, mlr, version)
    with pytest.raises(Conflict):
        service.update_draft(session, mlr.marketing, version.id, title="Back")
    with pytest.raises(Conflict):
        service.set_page_messages(session, mlr.marketing, version.id, 1, ["Efficacy"])
    review.expire_due(session, version.valid_until + timedelta(days=1))
    assert version.state == state
    assert not service.presentable(session, version)
    with pytest.raises(Conflict):
        service.require_presentable(session, version)


def test_withdrawn_content_never_comes_back(session, mlr):
    version = approved_version(session, mlr, pages=1)
    review.withdraw(session, mlr.admin, version.id, "Recalled")
    _try_every_way_back(session, mlr, version)
    assert version.state == "withdrawn"


def test_expire_due_at_the_expiry_date(session, mlr):
    day = service.today()
    version = approved_version(session, mlr, pages=1, valid_until=day + timedelta(days=10))
    assert review.expire_due(session, day + timedelta(days=10)) == 0  # its last valid day
    assert version.state == "approved"
    assert service.presentable(session, version, day + timedelta(days=10))
    assert not service.presentable(session, version, day + timedelta(days=11))

    with acting(session, mlr.admin):
        assert review.expire_due(session, day + timedelta(days=11)) == 1
    assert version.state == "expired" and version.ended_at is not None
    assert version.end_reason == f"Expired on {version.valid_until.isoformat()}"
    assert review.expire_due(session, day + timedelta(days=12)) == 0
    _try_every_way_back(session, mlr, version)
    assert version.state == "expired"


def test_past_expiry_takes_effect_before_the_worker_runs(session, mlr, monkeypatch):
    day = service.today()
    version = approved_version(
        session,
        mlr,
        pages=1,
        valid_from=day - timedelta(days=30),
        valid_until=day,
    )
    monkeypatch.setattr(service, "today", lambda: day + timedelta(days=1))  # midnight passes
    assert version.state == "approved"  # expire_due has not run yet
    assert not service.presentable(session, version)
    with pytest.raises(Conflict, match="expired"):
        service.require_presentable(session, version)
    assert service.library(session, mlr.rep) == [] and clm.offered(session, mlr.rep) == []


def test_content_not_valid_yet_is_not_presented(session, mlr):
    day = service.today()
    version = approved_version(session, mlr, pages=1, valid_from=day + timedelta(days=3))
    with pytest.raises(Conflict, match="not valid yet"):
        service.require_presentable(session, version)
    assert service.presentable(session, version, day + timedelta(days=3))


def test_expiry_before_the_start_is_refused(session, mlr):
    day = service.today()
    with pytest.raises(Invalid) as exc:
        upload_version(session, mlr, pages=1, valid_until=day - timedelta(days=1))
    assert exc.value.errors[0]["field"] == "valid_until"
    draft = upload_version(session, mlr, pages=1)
    with pytest.raises(Invalid):
        service.update_draft(session, mlr.marketing, draft.id, valid_from=day + timedelta(days=400))


# ---------------------------------------------------------------- versions


def test_expiry_already_past_is_refused(session, mlr):
    day = service.today()
    with pytest.raises(Invalid, match="already passed") as exc:
        upload_version(
            session,
            mlr,
            pages=1,
            valid_from=day - timedelta(days=30),
            valid_until=day - timedelta(days=1),
        )
    assert exc.value.errors[0]["field"] == "valid_until"


def test_a_version_approved_ahead_of_its_start_leaves_the_current_one_in_use(
    session, mlr, monkeypatch
):
    day = service.today()
    v1 = approved_version(session, mlr, pages=1)
    v2 = upload_version(
        session, mlr, pages=1, content_id=v1.content_id, valid_from=day + timedelta(days=7)
    )
    approve(session, mlr, v2)
    assert v2.state == "approved" and v1.state == "approved"
    assert [v.id for v in clm.offered(session, mlr.rep)] == [v1.id]
    assert review.supersede_due(session, day) == 0

    monkeypatch.setattr(service, "today", lambda: day + timedelta(days=7))
    assert [v.id for v in clm.offered(session, mlr.rep)] == [v2.id]  # at once, by date
    assert review.supersede_due(session) == 1  # the worker's duty records it
    assert v1.state == "superseded" and v2.state == "approved"


def test_a_new_version_is_a_draft_until_approved_then_supersedes(session, mlr):
    v1 = approved_version(session, mlr, pages=2)
    v2 = upload_version(session, mlr, pages=3, content_id=v1.content_id, change_note="New data")
    assert (v2.number, v2.state, v2.title) == (2, "draft", v1.title)
    assert v1.state == "approved" and service.presentable(session, v1)
    assert [v.id for v in clm.offered(session, mlr.rep)] == [v1.id]

    # one draft or review at a time
    with pytest.raises(Conflict):
        upload_version(session, mlr, pages=1, content_id=v1.content_id)
    submit(session, mlr, v2)
    with pytest.raises(Conflict):
        upload_version(session, mlr, pages=1, content_id=v1.content_id)
    sign_as(session, mlr.medical, v2)
    sign_as(session, mlr.legal, v2)
    assert v1.state == "approved" and service.presentable(session, v1)

    sign_as(session, mlr.regulatory, v2)
    assert v2.state == "approved" and v1.state == "superseded"
    assert v1.end_reason == "Replaced by version 2" and v1.ended_at is not None
    assert not service.presentable(session, v1) and service.presentable(session, v2)
    with pytest.raises(Conflict):
        service.require_presentable(session, v1)
    assert [v.id for v in clm.offered(session, mlr.rep)] == [v2.id]
    assert [v.id for v in service.library(session, mlr.rep)] == [v2.id]
    _try_every_way_back(session, mlr, v1)


def test_a_rejected_version_makes_room_for_the_next(session, mlr):
    v1 = in_review(session, mlr)
    sign_as(session, mlr.medical, v1, "rejected", comment="Wrong dose")
    v2 = upload_version(session, mlr, pages=2, content_id=v1.content_id)
    assert (v2.number, v2.state) == (2, "draft")


# ---------------------------------------------------------------- what was signed


def test_a_changed_file_voids_the_signatures(session, mlr):
    version = approved_version(session, mlr, pages=1)
    original = storage.original_path(version)
    data = bytearray(original.read_bytes())
    data[-20] ^= 0x01  # one bit, same size
    original.write_bytes(bytes(data))

    assert version.state == "approved"
    assert not service.presentable(session, version)
    assert not any(c.valid for c in service.check_signatures(session, version))
    with pytest.raises(Conflict, match="no longer matches"):
        service.require_presentable(session, version)
    assert clm.offered(session, mlr.rep) == []
    assert clm.player_status(session, mlr.rep, version.id)["presentable"] is False

    original.unlink()  # a missing file is no better
    assert not service.presentable(session, version)


def test_a_change_hidden_behind_the_old_timestamp_still_voids(session, mlr):
    version = approved_version(session, mlr, pages=1)
    original = storage.original_path(version)
    assert service.presentable(session, version)  # its hash is now cached
    before = original.stat()
    data = bytearray(original.read_bytes())
    data[-20] ^= 0x01
    original.write_bytes(bytes(data))
    os.utime(original, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    assert original.stat().st_size == before.st_size
    assert not service.presentable(session, version)


def test_a_file_changed_during_review_cannot_be_signed(session, mlr):
    version = in_review(session, mlr)
    sign_as(session, mlr.medical, version)
    original = storage.original_path(version)
    original.write_bytes(original.read_bytes() + b"%%EOF\n")
    with pytest.raises(Conflict) as exc:
        sign_as(session, mlr.legal, version)
    assert exc.value.errors[0]["field"] == "file"
    assert signature_count(session, version) == 1 and version.state == "in_review"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Cardiozen: now for everyone"),
        ("countries", ["FR", "GB"]),
        ("key_messages", ["Efficacy", "Cures everything"]),
        ("valid_until", "+365"),
    ],
)
def test_a_change_in_signed_metadata_voids_the_signatures(session, mlr, field, value):
    version = approved_version(session, mlr, pages=1)
    if value == "+365":
        value = version.valid_until + timedelta(days=365)
    setattr(version, field, value)  # behind the services' back: drafts only may change
    session.flush()
    assert not service.presentable(session, version)
    with pytest.raises(Conflict):
        service.require_presentable(session, version)


def test_page_key_messages_are_signed_too(session, mlr):
    version = upload_version(session, mlr, pages=2)
    service.set_page_messages(session, mlr.marketing, version.id, 2, ["Safety"])
    approve(session, mlr, version)
    assert service.presentable(session, version)
    page = service.pages(session, version.id)[1]
    page.key_messages = ["Efficacy"]
    session.flush()
    assert not service.presentable(session, version)


def test_unsigned_metadata_may_change_without_voiding(session, mlr):
    version = approved_version(session, mlr, pages=1)
    version.description = "Longer description"
    session.flush()
    assert service.presentable(session, version)


# ---------------------------------------------------------------- audit trail and diff


def test_every_step_is_on_the_audit_trail(session, mlr):
    v1 = approved_version(session, mlr, pages=1)
    v2 = approved_version(session, mlr, pages=1, content_id=v1.content_id)
    with acting(session, mlr.admin):
        review.withdraw(session, mlr.admin, v2.id, "Recalled")

    count, problems = audit.verify(session)
    assert problems == [] and count > 0

    def records(entity, entity_id):
        return session.scalars(
            select(AuditRecord)
            .where(AuditRecord.entity == entity, AuditRecord.entity_id == str(entity_id))
            .order_by(AuditRecord.seq)
        ).all()

    v2_trail = records("content_versions", v2.id)
    assert v2_trail[0].action == "create" and v2_trail[0].actor == mlr.marketing.email
    states = [r.after["state"] for r in v2_trail]
    assert states[0] == "draft" and states[-2:] == ["approved", "withdrawn"]
    assert "in_review" in states
    assert v2_trail[-1].actor_id == mlr.admin.id
    assert v2_trail[-1].after["end_reason"] == "Recalled"
    v1_trail = records("content_versions", v1.id)
    assert v1_trail[-1].before["state"] == "approved"
    assert v1_trail[-1].after["state"] == "superseded"
    assert records("contents", v1.content_id)[0].action == "create"

    for sig in service.signatures(session, v2.id):
        [rec] = records("signatures", sig.id)
        assert rec.action == "create" and rec.actor_id == sig.signer_id
        assert rec.after["signer_id"] == sig.signer_id
        assert rec.after["signed_hash"] == sig.signed_hash
    signers = {s.signer_id for s in service.signatures(session, v2.id)}
    assert signers == {r.id for r in mlr.reviewers}


def test_diff_shows_the_changed_page(session, mlr):
    v1 = approved_version(session, mlr, texts=["Cardiozen", "Dose 10 mg daily", "Safety data"])
    v2 = upload_version(
        session,
        mlr,
        texts=["Cardiozen", "Dose 20 mg daily", "Safety data", "References"],
        content_id=v1.content_id,
    )
    assert review.previous_version(session, v2).id == v1.id
    pages = review.diff(session, v1, v2)
    assert [(p["page"], p["status"]) for p in pages] == [
        (1, "same"),
        (2, "changed"),
        (3, "same"),
        (4, "added"),
    ]
    assert ("del", "10") in pages[1]["parts"] and ("add", "20") in pages[1]["parts"]
    assert ("add", "References") in pages[3]["parts"]
    assert pages[0]["parts"] == []


def test_a_draft_can_be_discarded_and_a_reviewed_version_cannot(session, mlr):
    v1 = approved_version(session, mlr, pages=1)
    v2 = upload_version(session, mlr, pages=1, content_id=v1.content_id)
    with pytest.raises(Forbidden):
        service.discard_draft(session, mlr.rep, v2.id)
    with acting(session, mlr.marketing):
        assert service.discard_draft(session, mlr.marketing, v2.id) == v1.content_id
    assert session.get(ContentVersion, v2.id) is None
    # the next version can start now; a reviewed one is never deleted
    upload_version(session, mlr, pages=1, content_id=v1.content_id)
    with pytest.raises(Conflict, match="Only a draft"):
        service.discard_draft(session, mlr.marketing, v1.id)
    lone = upload_version(session, mlr, pages=1, title="False start")
    with acting(session, mlr.marketing):
        assert service.discard_draft(session, mlr.marketing, lone.id) is None
    assert session.get(service.Content, lone.content_id) is None
    assert audit.verify(session)[1] == []
    deleted = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "content_versions",
            AuditRecord.entity_id == str(lone.id),
            AuditRecord.action == "delete",
        )
    ).all()
    assert len(deleted) == 1


def test_the_library_searches_titles_and_the_text_of_every_page(session, mlr):
    deck = upload_version(
        session, mlr, pages=2, title="Launch deck", texts=["Welcome", "Renal protection 50%"]
    )
    other = upload_version(session, mlr, pages=1, title="Renal data sheet", texts=["Tables"])
    found = {v.id for v in service.library(session, mlr.marketing, q="renal")}
    assert found == {deck.id, other.id}
    assert [v.id for v in service.library(session, mlr.marketing, q="protection 50%")] == [deck.id]
    assert service.library(session, mlr.marketing, q="nowhere") == []
    assert service.library(session, mlr.marketing, q="50_") == []  # LIKE wildcards are literal
