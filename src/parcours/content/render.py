"""Turns a checked file into page images and page text: PDF and PPTX pages, an image, a package."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageOps

from parcours.content.files import PDFIUM_LOCK, safe_extract
from parcours.core.errors import Invalid
from parcours.core.settings import Settings

PAGE_LONG_SIDE = 1600
THUMB_WIDTH = 320
JPEG_QUALITY = 85

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RenderedPage:
    number: int  # 1-based
    text: str
    width: int  # pixel size of the full image; 0 when there is none
    height: int


def render(
    kind: str,
    original: Path,
    out_dir: Path,
    settings: Settings,
    progress: Progress | None = None,
) -> list[RenderedPage]:
    """Write ``pages/NNNN.jpg`` and ``thumbs/NNNN.jpg`` under ``out_dir`` and return each page.

    Videos get no image; an HTML5 package is unpacked into ``out_dir/site``. On failure
    the images written so far are removed and the error is raised again.
    """
    report = progress or (lambda done, total: None)
    try:
        if kind == "pdf":
            return _render_pdf(original, out_dir, report)
        if kind == "pptx":
            return _render_pptx(original, out_dir, settings, report)
        if kind == "image":
            return _render_image(original, out_dir, report)
        if kind == "video":
            report(1, 1)
            return [RenderedPage(1, "", 0, 0)]
        if kind == "html5":
            safe_extract(original, out_dir / "site", settings)
            index = out_dir / "site" / "index.html"
            text = html_text(index.read_bytes().decode("utf-8-sig", errors="replace"))
            report(1, 1)
            return [RenderedPage(1, text, 0, 0)]
        if kind == "email":  # the template itself is what reviewers read; its text for search
            text = html_text(original.read_bytes().decode("utf-8-sig", errors="replace"))
            report(1, 1)
            return [RenderedPage(1, text, 0, 0)]
        raise ValueError(f"unknown content kind {kind!r}")
    except BaseException:
        shutil.rmtree(out_dir / "pages", ignore_errors=True)
        shutil.rmtree(out_dir / "thumbs", ignore_errors=True)
        raise


def html_text(html: str) -> str:
    """The visible text of an HTML document, whitespace collapsed."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.chunks).split())


class _TextParser(HTMLParser):
    HIDDEN = {"script", "style", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def _render_pdf(pdf_path: Path, out_dir: Path, report: Progress) -> list[RenderedPage]:
    _make_dirs(out_dir)
    # The lock is taken per PDFium call group, not for the whole document, so that an
    # upload being checked waits for one page, not for a 500-page render.
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf_path)
        except pdfium.PdfiumError as exc:
            raise Invalid("This PDF is damaged and cannot be opened.", field="file") from exc
    try:
        with PDFIUM_LOCK:
            total = len(document)
        pages = []
        for index in range(total):
            with PDFIUM_LOCK:
                image, text = _render_pdf_page(document, index)
            number = index + 1
            width, height = _save_page(image, out_dir, number, upscale=True)
            pages.append(RenderedPage(number, text, width, height))
            report(number, total)
        return pages
    finally:
        with PDFIUM_LOCK:
            document.close()


def _render_pdf_page(document: pdfium.PdfDocument, index: int) -> tuple[Image.Image, str]:
    page = document[index]
    try:
        width, height = page.get_size()
        bitmap = page.render(scale=PAGE_LONG_SIDE / max(width, height, 1))
        try:
            # convert() copies: the image must not share the bitmap's buffer once closed
            image = bitmap.to_pil().convert("RGB")
        finally:
            bitmap.close()
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
    finally:
        page.close()
    # PDFium ends lines with \r\n; a NUL would not fit in a PostgreSQL text column
    return image, text.replace("\r\n", "\n").replace("\x00", "").strip()


def _render_pptx(
    original: Path, out_dir: Path, settings: Settings, report: Progress
) -> list[RenderedPage]:
    with tempfile.TemporaryDirectory(prefix="parcours-soffice-") as tmp:
        pdf = _convert_to_pdf(original, Path(tmp), settings)
        return _render_pdf(pdf, out_dir, report)


def _convert_to_pdf(original: Path, tmp: Path, settings: Settings) -> Path:
    """Convert a presentation with LibreOffice; its own profile lets conversions run at once."""
    source = tmp / "presentation.pptx"  # LibreOffice picks its import filter by extension
    shutil.copyfile(original, source)
    outdir = tmp / "out"
    command = [
        settings.soffice,
        f"-env:UserInstallation={(tmp / 'profile').as_uri()}",
        "--headless",
        "--norestore",
        "--convert-to",
        "pdf",
        "--outdir",
        str(outdir),
        str(source),
    ]
    env = {**os.environ, "HOME": str(tmp)}
    # A session of its own: on timeout the whole group (the soffice script and
    # soffice.bin) is killed, not only the script.
    if shutil.which(settings.soffice) is None:
        raise Invalid(
            "PowerPoint files cannot be converted on this server: LibreOffice is not installed "
            "(an admin installs Debian's libreoffice-impress-nogui).",
            field="file",
        )
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=settings.convert_timeout_s)
    except subprocess.TimeoutExpired as exc:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise Invalid(
            "LibreOffice could not convert this presentation: "
            f"it took longer than {settings.convert_timeout_s} s.",
            field="file",
        ) from exc
    pdf = outdir / "presentation.pdf"
    if process.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        raise Invalid(
            "LibreOffice could not convert this presentation: "
            f"{_last_line(output) or f'exit status {process.returncode}, no PDF produced'}.",
            field="file",
        )
    return pdf


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line and not re.match(r"^convert .* -> ", line)]
    return lines[-1][:300].rstrip(".") if lines else ""


def _render_image(original: Path, out_dir: Path, report: Progress) -> list[RenderedPage]:
    _make_dirs(out_dir)
    try:
        with Image.open(original) as opened:
            image = _flatten(ImageOps.exif_transpose(opened))  # the first frame of a GIF
    except (OSError, SyntaxError, ValueError) as exc:
        raise Invalid("This image is damaged and cannot be opened.", field="file") from exc
    width, height = _save_page(image, out_dir, 1, upscale=False)
    report(1, 1)
    return [RenderedPage(1, "", width, height)]


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB copy, with transparent areas on white rather than black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _save_page(image: Image.Image, out_dir: Path, number: int, *, upscale: bool) -> tuple[int, int]:
    """Save the full image (longest side 1600 px) and its thumbnail (320 px wide)."""
    longest = max(image.size)
    if longest != PAGE_LONG_SIDE and (upscale or longest > PAGE_LONG_SIDE):
        image = _scaled(image, PAGE_LONG_SIDE / longest)
    name = f"{number:04d}.jpg"
    image.save(out_dir / "pages" / name, "JPEG", quality=JPEG_QUALITY)
    thumb_size = (THUMB_WIDTH, max(1, round(image.height * THUMB_WIDTH / image.width)))
    thumb = image.resize(thumb_size, Image.Resampling.LANCZOS)
    thumb.save(out_dir / "thumbs" / name, "JPEG", quality=JPEG_QUALITY)
    return image.size


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _make_dirs(out_dir: Path) -> None:
    (out_dir / "pages").mkdir(parents=True, exist_ok=True)
    (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
