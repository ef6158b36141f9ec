"""Rendering: page images and page text for PDFs, decks (real LibreOffice), images, packages."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from parcours.content.render import RenderedPage, render
from parcours.core.errors import Invalid
from parcours.core.settings import Settings

import docs


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(content_dir=tmp_path)


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        return image.size


@pytest.fixture(scope="module")
def rendered_deck(tmp_path_factory) -> tuple[Path, list[RenderedPage]]:
    """A 3-slide PPTX converted once by the real LibreOffice (it takes a few seconds)."""
    tmp = tmp_path_factory.mktemp("deck")
    original = docs.make_pptx(tmp / "original", slides=3)  # stored without an extension
    out = tmp / "out"
    return out, render("pptx", original, out, Settings(content_dir=tmp))


def test_pdf_pages_are_rendered_with_their_text(tmp_path, settings):
    original = docs.make_pdf(tmp_path / "deck.pdf", pages=3)
    calls = []

    pages = render("pdf", original, tmp_path / "out", settings, lambda d, t: calls.append((d, t)))

    assert [page.number for page in pages] == [1, 2, 3]
    assert "Slide 2" in pages[1].text
    assert "Slide 2" not in pages[0].text and "Slide 2" not in pages[2].text
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for page in pages:
        name = f"{page.number:04d}.jpg"
        assert image_size(tmp_path / "out" / "pages" / name) == (page.width, page.height)
        assert page.height == 1600 and 1120 < page.width < 1140  # A4 portrait
        thumb_width, thumb_height = image_size(tmp_path / "out" / "thumbs" / name)
        assert thumb_width == 320
        assert thumb_height == round(page.height * 320 / page.width)


def test_landscape_pdf_is_1600_pixels_wide(tmp_path, settings):
    original = docs.make_pdf(tmp_path / "wide.pdf", pages=1, landscape=True)
    [page] = render("pdf", original, tmp_path / "out", settings)
    assert page.width == 1600 and page.height < 1600
    assert image_size(tmp_path / "out" / "pages" / "0001.jpg") == (1600, page.height)


def test_failed_render_leaves_no_images(tmp_path, settings):
    original = docs.make_corrupt_pdf(tmp_path / "cut.pdf")
    with pytest.raises(Invalid, match="damaged"):
        render("pdf", original, tmp_path / "out", settings)
    assert not (tmp_path / "out" / "pages").exists()
    assert not (tmp_path / "out" / "thumbs").exists()


def test_pptx_is_converted_by_libreoffice_and_rendered(rendered_deck):
    out, pages = rendered_deck
    assert [page.number for page in pages] == [1, 2, 3]
    for page in pages:
        assert f"Slide {page.number}: launch" in page.text
        assert f"Key message number {page.number}" in page.text
        assert (page.width, page.height) == (1600, 1200)  # python-pptx's default 4:3 slide
        name = f"{page.number:04d}.jpg"
        assert image_size(out / "pages" / name) == (1600, 1200)
        assert image_size(out / "thumbs" / name) == (320, 240)


def test_libreoffice_failure_is_reported_and_leaves_no_images(tmp_path):
    settings = Settings(content_dir=tmp_path, soffice="false")
    original = docs.make_pptx(tmp_path / "deck.pptx", slides=1)
    with pytest.raises(Invalid, match="LibreOffice could not convert this presentation") as caught:
        render("pptx", original, tmp_path / "out", settings)
    assert caught.value.errors[0]["field"] == "file"
    assert not (tmp_path / "out" / "pages").exists()


def test_libreoffice_running_too_long_is_stopped(tmp_path):
    slow = tmp_path / "slow-soffice"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    settings = Settings(content_dir=tmp_path, soffice=str(slow), convert_timeout_s=1)
    original = docs.make_pptx(tmp_path / "deck.pptx", slides=1)
    with pytest.raises(Invalid, match="took longer than 1 s"):
        render("pptx", original, tmp_path / "out", settings)


def test_image_becomes_one_rgb_page_without_upscaling(tmp_path, settings):
    original = docs.make_png(tmp_path / "logo", size=(400, 300), alpha=True)
    pages = render("image", original, tmp_path / "out", settings)
    assert pages == [RenderedPage(1, "", 400, 300)]
    assert image_size(tmp_path / "out" / "pages" / "0001.jpg") == (400, 300)
    assert image_size(tmp_path / "out" / "thumbs" / "0001.jpg") == (320, 240)


def test_large_image_is_brought_down_to_1600_pixels(tmp_path, settings):
    original = docs.make_image(tmp_path / "poster", "JPEG", size=(1000, 3200))
    pages = render("image", original, tmp_path / "out", settings)
    assert pages == [RenderedPage(1, "", 500, 1600)]
    assert image_size(tmp_path / "out" / "thumbs" / "0001.jpg") == (320, 1024)


def test_html5_package_is_unpacked_and_its_text_kept(tmp_path, settings):
    original = docs.make_html5_zip(tmp_path / "pkg", folder="launch")
    calls = []
    pages = render("html5", original, tmp_path / "out", settings, lambda d, t: calls.append((d, t)))
    assert pages == [
        RenderedPage(1, "Cardio launch Welcome & hello Dosing schedule explained.", 0, 0)
    ]
    assert calls == [(1, 1)]
    assert (tmp_path / "out" / "site" / "index.html").is_file()
    assert not (tmp_path / "out" / "pages").exists()


def test_video_gets_one_page_and_no_image(tmp_path, settings):
    original = docs.make_mp4(tmp_path / "film")
    assert render("video", original, tmp_path / "out", settings) == [RenderedPage(1, "", 0, 0)]
    assert not (tmp_path / "out" / "pages").exists()
