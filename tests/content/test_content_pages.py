"""The content pages through the real app: library, upload, version page, review, files."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parcours.content import service, storage, tasks
from parcours.content.models import Content, ContentVersion, ReviewComment, Signature
from parcours.core.models import User

import docs
from content_factories import acting, approved_version, submit, upload_version
from factories import PASSWORD, create_user, login


@pytest.fixture
def client(client):
    client.headers["Accept-Language"] = "en"
    return client


def as_user(client, user) -> None:
    client.cookies.clear()
    assert login(client, user.email).status_code == 303


def csrf_of(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text[:500]
    return re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def upload_form(mlr, token: str, **over) -> dict:
    day = service.today()
    data = {
        "_csrf": token,
        "title": "Cardiozen launch deck",
        "description": "For the launch tour.",
        "content_type": "promotional",
        "language": "fr",
        "countries": ["FR", "BE"],
        "product_ids": [str(mlr.product.id)],
        "audience": "Cardiology, General practice",
        "key_messages": "Efficacy at 12 months\nOnce daily",
        "valid_from": day.isoformat(),
        "valid_until": (day + timedelta(days=365)).isoformat(),
        "required_roles": ["medical", "legal", "regulatory"],
    }
    data.update(over)
    return data


def in_review(session, mlr, **meta) -> ContentVersion:
    return submit(session, mlr, upload_version(session, mlr, pages=2, **meta))


# ---------------------------------------------------------------- upload


def test_upload_creates_a_draft_that_shows_its_progress_then_its_pages(
    client, session, mlr, tmp_path
):
    as_user(client, mlr.marketing)
    token = csrf_of(client, "/content/new")
    pdf = docs.make_pdf(tmp_path / "deck.pdf", pages=3)
    with pdf.open("rb") as f:
        resp = client.post(
            "/content/new",
            data=upload_form(mlr, token),
            files={"file": ("deck.pdf", f, "application/pdf")},
            follow_redirects=False,
        )
    assert resp.status_code == 303, resp.text[:2000]
    version_url = resp.headers["location"]
    version = session.scalars(select(ContentVersion)).one()
    assert version_url == f"/content/versions/{version.id}"
    assert (version.state, version.render_state, version.kind) == ("draft", "queued", "pdf")
    assert version.countries == ["BE", "FR"]
    assert version.audience == ["Cardiology", "General practice"]
    assert version.key_messages == ["Efficacy at 12 months", "Once daily"]
    assert not any((storage.version_dir(0).parent / ".incoming").iterdir())

    page = client.get(version_url).text
    assert "Uploaded: its pages are being prepared" in page
    assert 'hx-trigger="every 1s"' in page
    assert f'hx-get="/content/versions/{version.id}/progress"' in page
    assert "Send to review" in page and "disabled" in page

    service.set_render_progress(session, version.id, render_state="rendering", render_done=1)
    version.page_count = 3
    progress = client.get(f"{version_url}/progress", headers={"HX-Request": "true"}).text
    assert "Rendering page 1 of 3" in progress and "every 1s" in progress

    tasks.render_with(session, version.id)
    ready = client.get(f"{version_url}/progress", headers={"HX-Request": "true"}).text
    assert "every 1s" not in ready
    assert f"/content/versions/{version.id}/thumbs/3.jpg" in ready
    assert 'hx-swap-oob="true"' in ready  # the send button wakes up

    thumb = client.get(f"/content/versions/{version.id}/thumbs/1.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"] == "private, max-age=86400"
    assert client.get(f"/content/versions/{version.id}/pages/9.jpg").status_code == 404
    assert client.get(f"/content/{version.content_id}", follow_redirects=False).headers[
        "location"
    ] == (version_url)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (docs.make_corrupt_pdf, "This PDF is damaged and cannot be opened."),
        (docs.make_encrypted_pdf, "This PDF is password-protected"),
        (docs.make_legacy_ppt, "encrypted or in the old .ppt format"),
    ],
)
def test_a_refused_file_is_named_next_to_the_file_field_and_nothing_is_created(
    client, session, mlr, tmp_path, make, message
):
    as_user(client, mlr.marketing)
    token = csrf_of(client, "/content/new")
    bad = make(tmp_path / "bad.pdf")
    with bad.open("rb") as f:
        resp = client.post(
            "/content/new",
            data=upload_form(mlr, token, title="Kept title"),
            files={"file": ("bad.pdf", f, "application/pdf")},
        )
    assert resp.status_code == 422
    error = re.search(r'<p class="field-error" id="file-error">.*?</p>', resp.text, re.S)
    assert error and message in error.group(0)
    assert "Choose the file again" in resp.text
    assert 'value="Kept title"' in resp.text
    assert count(session, Content) == 0 and count(session, ContentVersion) == 0
    assert not any((storage.version_dir(0).parent / ".incoming").iterdir())


def test_metadata_errors_keep_what_was_typed_and_create_nothing(client, session, mlr, tmp_path):
    as_user(client, mlr.marketing)
    token = csrf_of(client, "/content/new")
    pdf = docs.make_pdf(tmp_path / "deck.pdf", pages=1)
    with pdf.open("rb") as f:
        resp = client.post(
            "/content/new",
            data=upload_form(mlr, token, title="   ", product_ids=[], description="Keep me"),
            files={"file": ("deck.pdf", f, "application/pdf")},
        )
    assert resp.status_code == 422
    assert 'id="title-error"' in resp.text and "Give the content a title." in resp.text
    assert 'id="product_ids-error"' in resp.text
    assert "Keep me</textarea>" in resp.text
    assert "Efficacy at 12 months\nOnce daily</textarea>" in resp.text
    assert 'name="countries" value="BE" checked' in resp.text
    assert count(session, Content) == 0

    with pdf.open("rb") as f:  # a date the browser let through: caught before the service
        resp = client.post(
            "/content/new",
            data=upload_form(mlr, token, valid_until="31/12/2030"),
            files={"file": ("deck.pdf", f, "application/pdf")},
        )
    assert resp.status_code == 422 and 'id="valid_until-error"' in resp.text
    assert count(session, Content) == 0

    resp = client.post("/content/new", data=upload_form(mlr, token, countries=[]))
    assert resp.status_code == 422
    assert 'id="file-error"' in resp.text and "Choose a file." in resp.text
    assert 'id="countries-error"' in resp.text  # every field's error at once
    assert "Choose the file again" not in resp.text


def test_only_builders_upload(client, mlr):
    as_user(client, mlr.rep)
    assert client.get("/content/new").status_code == 403
    assert "Upload content" not in client.get("/content").text


# ---------------------------------------------------------------- library


def test_a_rep_sees_only_approved_valid_content_and_a_reviewer_no_drafts(client, session, mlr):
    approved = approved_version(session, mlr, pages=1, title="Approved deck")
    later = approved_version(session, mlr, pages=1, title="Not yet valid")
    later.valid_from = service.today() + timedelta(days=30)
    elsewhere = approved_version(session, mlr, pages=1, title="German deck", countries=["DE"])
    in_review(session, mlr, title="Deck in review")
    upload_version(session, mlr, pages=1, title="Draft deck")
    session.flush()

    as_user(client, mlr.rep)
    page = client.get("/content").text
    assert "Approved deck" in page
    for hidden in ("Not yet valid", "German deck", "Deck in review", "Draft deck"):
        assert hidden not in page
    assert client.get(f"/content/versions/{elsewhere.id}").status_code == 404
    assert client.get(f"/content/versions/{approved.id}").status_code == 200

    as_user(client, mlr.medical)
    page = client.get("/content").text
    assert "Deck in review" in page and "Approved deck" in page
    assert "Draft deck" not in page
    assert "German deck" in page and later.title in page

    as_user(client, mlr.marketing)
    full = client.get("/content?state=draft")
    assert "Draft deck" in full.text and "Approved deck" not in full.text
    assert "<html" in full.text
    partial = client.get("/content?q=approved", headers={"HX-Request": "true"})
    assert "Approved deck" in partial.text and "Draft deck" not in partial.text
    assert "<html" not in partial.text


def test_library_empty_states_say_what_to_do_first(client, mlr):
    as_user(client, mlr.marketing)
    page = client.get("/content").text
    assert "No content yet" in page and 'href="/content/new"' in page
    as_user(client, mlr.rep)
    assert "No approved content for you yet" in client.get("/content").text
    as_user(client, mlr.medical)
    assert "Nothing waiting for you" in client.get("/review").text


# ---------------------------------------------------------------- version page: draft to review


def test_a_draft_is_edited_tagged_and_sent_to_review(client, session, mlr):
    version = upload_version(session, mlr, pages=2)
    as_user(client, mlr.marketing)
    url = f"/content/versions/{version.id}"
    token = csrf_of(client, url)

    bad = upload_form(mlr, token, valid_until=(service.today() - timedelta(days=400)).isoformat())
    resp = client.post(f"{url}/edit", data=bad)
    assert resp.status_code == 422 and 'id="valid_until-error"' in resp.text
    assert version.valid_until > service.today()

    resp = client.post(f"{url}/edit", data=upload_form(mlr, token, title="Renamed deck"))
    assert resp.status_code == 200 and "Renamed deck" in resp.text
    assert version.title == "Renamed deck"

    viewer = client.get(f"{url}/view/2").text
    assert "Page 2 of 2" in viewer and f'action="{url}/pages/2/messages"' in viewer
    assert client.get(f"{url}/view/3").status_code == 404

    tagged = client.post(
        f"{url}/pages/2/messages",
        data={"_csrf": token, "key_messages": ["Once daily"]},
        headers={"HX-Request": "true"},
    )
    assert tagged.status_code == 200 and "X-Toast" in tagged.headers
    assert service.pages(session, version.id)[1].key_messages == ["Once daily"]
    refused = client.post(
        f"{url}/pages/2/messages",
        data={"_csrf": token, "key_messages": ["Not a key message"]},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422 and "field-error" in refused.text

    resp = client.post(f"{url}/submit", data={"_csrf": token})
    assert resp.status_code == 200 and "Sent to review" in resp.text
    assert version.state == "in_review"
    assert client.post(f"{url}/edit", data=upload_form(mlr, token)).status_code == 409


# ---------------------------------------------------------------- review and signatures


def test_the_review_page_signs_with_the_right_password_and_refuses_a_wrong_one(
    client, session, mlr
):
    version = in_review(session, mlr)
    as_user(client, mlr.medical)
    inbox = client.get("/review").text
    assert f'href="/content/versions/{version.id}/review"' in inbox
    assert "Marie Marketing" in inbox

    url = f"/content/versions/{version.id}/review"
    page = client.get(url).text
    assert "Signing: I, Dr Medical, approve this version as medical reviewer." in page
    assert "Your password is your signature." in page
    assert f"/content/versions/{version.id}/pages/2.jpg" in page
    token = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)

    comment = client.post(
        f"/content/versions/{version.id}/comments",
        data={"_csrf": token, "page": "2", "body": "Add the reference for this claim."},
        headers={"HX-Request": "true"},
    )
    assert comment.status_code == 200 and "Add the reference for this claim." in comment.text
    assert session.scalars(select(ReviewComment)).one().page == 2

    wrong = client.post(
        f"/content/versions/{version.id}/sign",
        data={"_csrf": token, "decision": "approved", "comment": "Fine", "password": "nope"},
    )
    assert wrong.status_code == 422
    error = re.search(r'id="password-error">.*?</p>', wrong.text, re.S)
    assert error and "This is not your password; nothing was signed." in error.group(0)
    assert ">Fine</textarea>" in wrong.text
    assert count(session, Signature) == 0

    no_reason = client.post(
        f"/content/versions/{version.id}/sign",
        data={"_csrf": token, "decision": "rejected", "comment": "", "password": PASSWORD},
    )
    assert no_reason.status_code == 422 and 'id="comment-error"' in no_reason.text
    assert count(session, Signature) == 0

    done = client.post(
        f"/content/versions/{version.id}/sign",
        data={"_csrf": token, "decision": "approved", "comment": "", "password": PASSWORD},
    )
    assert done.status_code == 200
    signature = session.scalars(select(Signature)).one()
    assert (signature.role, signature.decision) == ("medical", "approved")
    assert "Signed by Dr Medical on" in done.text
    assert "Approved as medical reviewer" in done.text
    assert 'name="password"' not in done.text  # nothing left to sign for this role
    assert f'href="/content/versions/{version.id}/review"' not in client.get("/review").text


def test_changes_since_the_previous_version_are_shown_to_the_reviewer(client, session, mlr):
    first = approved_version(session, mlr, texts=["Efficacy at six months", "Safety"])
    second = upload_version(
        session, mlr, texts=["Efficacy at twelve months", "Safety"], content_id=first.content_id
    )
    submit(session, mlr, second)
    as_user(client, mlr.legal)
    page = client.get(f"/content/versions/{second.id}/review").text
    assert "Changes since version 1" in page
    assert "<del>six</del>" in page and "<ins>twelve</ins>" in page


# ---------------------------------------------------------------- withdrawal


def test_withdrawal_needs_an_admin_and_a_reason(client, session, mlr):
    version = approved_version(session, mlr, pages=1)
    url = f"/content/versions/{version.id}"

    as_user(client, mlr.marketing)
    token = csrf_of(client, url)
    assert "withdraw-dialog" not in client.get(url).text
    refused = client.post(f"{url}/withdraw", data={"_csrf": token, "reason": "Label change"})
    assert refused.status_code == 403 and version.state == "approved"

    as_user(client, mlr.admin)
    token = csrf_of(client, url)
    assert 'data-open-dialog="withdraw-dialog"' in client.get(url).text
    empty = client.post(f"{url}/withdraw", data={"_csrf": token, "reason": "  "})
    assert empty.status_code == 422 and 'id="reason-error"' in empty.text
    assert "data-open-on-load" in empty.text and version.state == "approved"

    done = client.post(f"{url}/withdraw", data={"_csrf": token, "reason": "Label change"})
    assert done.status_code == 200 and "Label change" in done.text
    assert version.state == "withdrawn" and version.end_reason == "Label change"
    as_user(client, mlr.rep)
    assert client.get(url).status_code == 404


# ---------------------------------------------------------------- files


def test_the_html5_site_route_stays_inside_the_package_and_sends_its_csp(
    client, session, mlr, tmp_path
):
    package = docs.make_html5_zip(tmp_path / "site.zip", folder="launch")
    version = upload_version(session, mlr, file=package, filename="site.zip")
    assert version.kind == "html5" and version.render_state == "ready"
    (storage.version_dir(version.id) / "secret.txt").write_text("outside the site")
    as_user(client, mlr.marketing)
    base = f"/content/versions/{version.id}/site"

    index = client.get(f"{base}/index.html")
    assert index.status_code == 200 and "Welcome" in index.text
    csp = index.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'none'" in csp
    assert "frame-ancestors 'self'" in csp and "form-action 'none'" in csp
    assert csp.rstrip().endswith("sandbox allow-scripts")  # opaque origin even opened alone
    assert index.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"{base}/css/style.css").headers["content-type"].startswith("text/css")

    for escape in ("..%2Fsecret.txt", "%2E%2E/%2E%2E/secret.txt", "css/..%2F..%2Fsecret.txt"):
        resp = client.get(f"{base}/{escape}")
        assert resp.status_code == 404, escape
        assert "outside the site" not in resp.text
    assert client.get(f"{base}/%2Fetc%2Fpasswd").status_code == 404

    page = client.get(f"/content/versions/{version.id}").text
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox="allow-scripts"' in frame and "allow-same-origin" not in frame
    src = re.search(r'src="([^"]+)"', frame).group(1)
    assert src.startswith(f"{base}/~") and src.endswith("/index.html")

    # a sandboxed frame has an opaque origin: its requests carry no cookie, only the signed path
    client.cookies.clear()
    assert client.get(src).status_code == 200
    style = client.get(src.replace("index.html", "css/style.css"))
    assert style.status_code == 200 and style.headers["referrer-policy"] == "no-referrer"
    assert client.get(src.replace("index.html", "..%2F..%2Fsecret.txt")).status_code == 404
    forged = re.sub(r"\.[0-9a-f]{32}/", "." + "0" * 32 + "/", src)
    assert client.get(forged).status_code == 404
    other = src.replace(f"~{mlr.marketing.id}.", f"~{mlr.admin.id}.")
    assert client.get(other).status_code == 404
    assert client.get(f"{base}/index.html", follow_redirects=False).status_code == 303


def test_a_video_plays_from_its_original_file(client, session, mlr, tmp_path):
    video = docs.make_mp4(tmp_path / "clip.mp4")
    version = upload_version(session, mlr, file=video, filename="clip.mp4")
    as_user(client, mlr.marketing)
    page = client.get(f"/content/versions/{version.id}").text
    player = re.search(r"<video[^>]*>", page).group(0)
    assert "controls" in player and f'src="/content/versions/{version.id}/original"' in player
    clip = client.get(f"/content/versions/{version.id}/original", headers={"Range": "bytes=0-99"})
    assert clip.status_code == 206 and clip.headers["content-type"] == "video/mp4"
    assert clip.headers["content-disposition"].startswith("inline")


def test_a_rep_cannot_reach_the_files_of_a_draft(client, session, mlr):
    version = upload_version(session, mlr, pages=1)
    as_user(client, mlr.rep)
    for path in ("pages/1.jpg", "thumbs/1.jpg", "original", "review", "progress"):
        assert client.get(f"/content/versions/{version.id}/{path}").status_code in (403, 404)


# ---------------------------------------------------------------- languages and statistics


def test_pages_render_in_french_and_english(client, session, mlr):
    version = in_review(session, mlr)
    for user, lang, words in (
        (mlr.marketing, "fr", ("Contenus", "Déposer un contenu", "En revue")),
        (mlr.marketing, "en", ("Content", "Upload content", "In review")),
    ):
        session.get(User, user.id).language = lang
        session.flush()
        as_user(client, user)
        library = client.get("/content").text
        assert all(w in library for w in words), lang
        assert f'<html lang="{lang}">' in library
        assert client.get(f"/content/versions/{version.id}").status_code == 200
        assert client.get("/content/new").status_code == 200
    with acting(session, mlr.medical):
        mlr.medical.language = "fr"
    session.flush()
    as_user(client, mlr.medical)
    review = client.get(f"/content/versions/{version.id}/review").text
    assert "j'approuve cette version en tant que relecteur médical" in review.replace("&#39;", "'")
    token = re.search(r'name="_csrf" value="([^"]+)"', review).group(1)
    wrong = client.post(
        f"/content/versions/{version.id}/sign",
        data={"_csrf": token, "decision": "approved", "password": "nope"},
    )
    assert "rien n&#39;a été signé" in wrong.text or "rien n'a été signé" in wrong.text
    assert "Revue" in client.get("/review").text


def test_statistics_are_for_marketing_and_managers_not_reps(client, session, mlr):
    version = approved_version(session, mlr, pages=1)
    manager = create_user(session, "manager", country="FR")
    url = f"/content/versions/{version.id}"
    as_user(client, mlr.marketing)
    assert "Not shown yet" in client.get(url).text
    as_user(client, manager)
    assert "Not shown yet" in client.get(url).text
    as_user(client, mlr.rep)
    assert "Not shown yet" not in client.get(url).text
