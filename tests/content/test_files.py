"""Checking uploads: each kind is told from its bytes, each bad file is refused with a reason."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from parcours.content.files import inspect, safe_extract
from parcours.core.errors import Invalid
from parcours.core.settings import Settings

import docs


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(content_dir=tmp_path / "content")


def refusal(path: Path, settings: Settings, filename: str = "upload") -> str:
    with pytest.raises(Invalid) as caught:
        inspect(path, filename, settings)
    assert caught.value.errors == [{"field": "file", "message": caught.value.detail}]
    return caught.value.detail


@pytest.mark.parametrize(
    ("make", "kind", "media_type", "ext"),
    [
        (docs.make_pdf, "pdf", "application/pdf", ".pdf"),
        (
            docs.make_pptx,
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ".pptx",
        ),
        (docs.make_html5_zip, "html5", "application/zip", ".zip"),
        (lambda p: docs.make_html5_zip(p, folder="launch"), "html5", "application/zip", ".zip"),
        (docs.make_png, "image", "image/png", ".png"),
        (lambda p: docs.make_png(p, alpha=True), "image", "image/png", ".png"),
        (lambda p: docs.make_image(p, "JPEG"), "image", "image/jpeg", ".jpg"),
        (lambda p: docs.make_image(p, "GIF"), "image", "image/gif", ".gif"),
        (lambda p: docs.make_image(p, "WEBP"), "image", "image/webp", ".webp"),
        (docs.make_mp4, "video", "video/mp4", ".mp4"),
        (docs.make_webm, "video", "video/webm", ".webm"),
    ],
    ids=[
        "pdf",
        "pptx",
        "html5",
        "html5-in-folder",
        "png",
        "png-alpha",
        "jpeg",
        "gif",
        "webp",
        "mp4",
        "webm",
    ],
)
def test_each_kind_is_recognised_from_its_bytes(tmp_path, settings, make, kind, media_type, ext):
    path = tmp_path / "upload.bin"  # the name says nothing: the bytes decide
    make(path)

    inspected = inspect(path, "whatever.txt", settings)

    assert (inspected.kind, inspected.media_type, inspected.ext) == (kind, media_type, ext)
    assert inspected.size == path.stat().st_size
    assert inspected.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pdf_named_like_an_image_is_still_a_pdf(tmp_path, settings):
    path = docs.make_pdf(tmp_path / "photo.png")
    assert inspect(path, "photo.png", settings).kind == "pdf"


def test_empty_file_is_refused(tmp_path, settings):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    assert refusal(path, settings, "empty.pdf") == "“empty.pdf” is empty."


def test_file_over_the_size_limit_is_refused_with_the_limit_in_mb(tmp_path):
    settings = Settings(content_dir=tmp_path, content_max_bytes=2_000_000)
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(2_500_000))
    assert refusal(path, settings, "big.pdf") == "“big.pdf” is 2.5 MB; the limit is 2 MB."


def test_unknown_type_is_refused_listing_what_is_accepted(tmp_path, settings):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes")
    message = refusal(path, settings)
    assert message.startswith("This type of file is not accepted")
    for accepted in ("PDF", ".pptx", "HTML5", "PNG", "JPEG", "MP4", "WebM"):
        assert accepted in message


def test_a_still_image_in_an_iso_container_is_not_taken_for_a_video(tmp_path, settings):
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    assert "not accepted" in refusal(path, settings)


def test_legacy_or_encrypted_powerpoint_is_refused(tmp_path, settings):
    path = docs.make_legacy_ppt(tmp_path / "deck.ppt")
    assert refusal(path, settings) == (
        "This PowerPoint file is encrypted or in the old .ppt format: "
        "save it as an unprotected .pptx."
    )


def test_corrupt_pdf_is_refused(tmp_path, settings):
    path = docs.make_corrupt_pdf(tmp_path / "cut.pdf")
    assert refusal(path, settings) == "This PDF is damaged and cannot be opened."


def test_password_protected_pdf_is_told_apart_from_a_corrupt_one(tmp_path, settings):
    path = docs.make_encrypted_pdf(tmp_path / "locked.pdf")
    assert refusal(path, settings) == (
        "This PDF is password-protected: remove the password and upload it again."
    )


def test_pdf_with_too_many_pages_is_refused(tmp_path):
    settings = Settings(content_dir=tmp_path, content_max_pages=2)
    path = docs.make_pdf(tmp_path / "long.pdf", pages=3)
    assert refusal(path, settings) == "This PDF has 3 pages; the limit is 2."


def test_pdf_without_pages_is_refused(tmp_path, settings):
    path = docs.make_pageless_pdf(tmp_path / "blank.pdf")
    assert refusal(path, settings) == "This PDF has no pages."


def test_presentation_with_too_many_or_no_slides_is_refused(tmp_path):
    settings = Settings(content_dir=tmp_path, content_max_pages=2)
    assert refusal(docs.make_pptx(tmp_path / "long.pptx", slides=3), settings) == (
        "This presentation has 3 slides; the limit is 2."
    )
    assert refusal(docs.make_pptx(tmp_path / "blank.pptx", slides=0), settings) == (
        "This presentation has no slides."
    )


def test_corrupt_image_is_refused(tmp_path, settings):
    path = docs.make_png(tmp_path / "cut.png", size=(800, 600))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert refusal(path, settings) == "This image is damaged and cannot be opened."


@pytest.mark.parametrize(
    "name", ["../evil.txt", "css/../../evil.txt", "/etc/evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
def test_zip_member_escaping_its_folder_is_refused(tmp_path, settings, name):
    path = docs.make_zip_slip(tmp_path / "slip.zip", name)
    assert "escapes its folder" in refusal(path, settings)


def test_zip_symlink_is_refused(tmp_path, settings):
    path = docs.make_zip_symlink(tmp_path / "link.zip")
    assert refusal(path, settings) == ("This zip file holds a path that escapes its folder: assets")


def test_highly_compressed_member_looks_like_a_zip_bomb(tmp_path, settings):
    path = docs.make_zip_bomb(tmp_path / "bomb.zip")
    message = refusal(path, settings)
    assert (
        message
        == "This zip file looks like a zip bomb: zeros.bin is compressed more than 100 to 1."
    )


def test_zip_unpacking_over_the_limit_looks_like_a_zip_bomb(tmp_path):
    settings = Settings(content_dir=tmp_path, content_max_unpacked_bytes=1_000)
    path = docs.make_zip(tmp_path / "big.zip", {"index.html": "x" * 2_000})
    assert refusal(path, settings) == (
        "This zip file looks like a zip bomb: it would unpack to more than 0.001 MB."
    )


def test_zip_with_too_many_members_looks_like_a_zip_bomb(tmp_path, settings):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("index.html", "<p>hi</p>")
        for n in range(10_000):
            zf.writestr(f"f/{n}", b"")
    assert refusal(path, settings) == (
        "This zip file looks like a zip bomb: it holds more than 10,000 files."
    )


def test_corrupt_zip_is_refused(tmp_path, settings):
    path = tmp_path / "cut.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    assert refusal(path, settings) == "This zip file is damaged and cannot be opened."


def test_zip_without_index_html_is_refused(tmp_path, settings):
    path = docs.make_zip(tmp_path / "photos.zip", {"a/index.html": "<p>1</p>", "b/x.css": ""})
    assert "an HTML5 package needs an index.html" in refusal(path, settings)


def test_safe_extract_puts_index_html_at_the_root(tmp_path, settings):
    dest = tmp_path / "site"
    safe_extract(docs.make_html5_zip(tmp_path / "pkg.zip"), dest, settings)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "css/style.css",
        "index.html",
        "js/app.js",
    ]


def test_safe_extract_strips_the_single_top_level_folder_and_mac_files(tmp_path, settings):
    dest = tmp_path / "site"
    safe_extract(docs.make_html5_zip(tmp_path / "pkg.zip", folder="launch"), dest, settings)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "css",
        "css/style.css",
        "index.html",
        "js",
        "js/app.js",
    ]


@pytest.mark.parametrize("name", ["../evil.txt", "css/../../evil.txt", "/tmp/evil.txt"])
def test_safe_extract_refuses_escaping_paths_and_leaves_no_folder(tmp_path, settings, name):
    dest = tmp_path / "out" / "site"
    with pytest.raises(Invalid, match="escapes its folder"):
        safe_extract(docs.make_zip_slip(tmp_path / "slip.zip", name), dest, settings)
    assert not dest.exists()
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_a_zip_bomb_and_leaves_no_folder(tmp_path, settings):
    dest = tmp_path / "site"
    with pytest.raises(Invalid, match="zip bomb"):
        safe_extract(docs.make_zip_bomb(tmp_path / "bomb.zip"), dest, settings)
    assert not dest.exists()


def test_safe_extract_refuses_a_zip_without_index_and_leaves_no_folder(tmp_path, settings):
    dest = tmp_path / "site"
    with pytest.raises(Invalid, match="needs an index.html"):
        safe_extract(docs.make_zip(tmp_path / "x.zip", {"readme.txt": "hi"}), dest, settings)
    assert not dest.exists()
