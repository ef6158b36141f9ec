"""Checks an uploaded file before it is stored: its kind from its bytes, its limits, its safety."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pypdfium2  # noqa: F401  (initialises PDFium before the raw calls)
import pypdfium2.raw as pdfium_c
from PIL import Image

from parcours.core.errors import Invalid
from parcours.core.settings import Settings
from parcours.email import templating

# PDFium must never be called from two threads at once, not even on different documents
# (pypdfium2's "Incompatibility with Threading"): uploads and renders take this lock.
PDFIUM_LOCK = threading.RLock()

MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_RATIO = 100
RATIO_CHECK_ABOVE = 1_000_000
CHUNK = 1 << 20

ACCEPTED = (
    "a PDF, a PowerPoint presentation (.pptx), an HTML5 package (.zip with an index.html), "
    "an image (PNG, JPEG, GIF, WebP), a video (MP4, WebM) or an email template (.html)"
)
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
EBML_MAGIC = bytes.fromhex("1A45DFA3")
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# ISO media files that are still images, not videos (HEIC, AVIF).
IMAGE_FTYP_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}
IMAGES = {  # Pillow format -> (media type, extension)
    "PNG": ("image/png", ".png"),
    "JPEG": ("image/jpeg", ".jpg"),
    "GIF": ("image/gif", ".gif"),
    "WEBP": ("image/webp", ".webp"),
}
PPTX_PARTS = ("ppt/presentation.xml", "[Content_Types].xml")
PPTX_SLIDE = re.compile(r"ppt/slides/slide\d+\.xml")
DRIVE = re.compile(r"^[A-Za-z]:")
# Finder adds these to zips made on a Mac; they are never part of the package.
MAC_JUNK = "__MACOSX/"
MAC_JUNK_FILE = ".DS_Store"


@dataclass(frozen=True)
class Inspected:
    kind: str  # "pdf" | "pptx" | "html5" | "image" | "video"
    media_type: str
    ext: str
    size: int
    sha256: str


def inspect(path: Path, filename: str, settings: Settings) -> Inspected:
    """Tell what an uploaded file is from its bytes, or raise Invalid saying why it is refused.

    ``filename`` is only used in messages: the kind never depends on it.
    """
    size = path.stat().st_size
    if size == 0:
        raise Invalid(f"{_name(filename)} is empty.", field="file")
    if size > settings.content_max_bytes:
        limit = _mb(settings.content_max_bytes)
        message = f"{_name(filename)} is {_mb(size)} MB; the limit is {limit} MB."
        raise Invalid(message, field="file")
    with path.open("rb") as f:
        head = f.read(4096)

    if head.startswith(OLE_MAGIC):
        raise Invalid(
            "This PowerPoint file is encrypted or in the old .ppt format: "
            "save it as an unprotected .pptx.",
            field="file",
        )
    if head.startswith(ZIP_MAGICS):
        kind, media_type, ext = _inspect_zip(path, settings)
    elif head[4:8] == b"ftyp" and head[8:12] not in IMAGE_FTYP_BRANDS:
        kind, media_type, ext = "video", "video/mp4", ".mp4"
    elif head.startswith(EBML_MAGIC) and b"webm" in head:
        kind, media_type, ext = "video", "video/webm", ".webm"
    elif _looks_like_image(head):
        kind = "image"
        media_type, ext = _inspect_image(path)
    elif b"%PDF-" in head[:1024]:  # readers accept a header anywhere in the first kilobyte
        kind, media_type, ext = "pdf", "application/pdf", ".pdf"
        _inspect_pdf(path, settings)
    elif templating.looks_like_html(head):  # a single HTML file is an email template
        try:
            templating.check_template(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise Invalid("An email template is UTF-8 text.", field="file") from exc
        kind, media_type, ext = "email", "text/html", ".html"
    else:
        raise Invalid(f"This type of file is not accepted: upload {ACCEPTED}.", field="file")
    return Inspected(kind, media_type, ext, size, _sha256(path))


def safe_extract(zip_path: Path, dest: Path, settings: Settings) -> None:
    """Unpack an HTML5 package into ``dest`` so that index.html lies at its root.

    Every path is checked again to stay under ``dest`` and the bytes actually written
    are counted (a zip header may lie); on failure ``dest`` is removed and Invalid raised.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = _check_zip_members(zf, settings)
            prefix = _html5_prefix(members)
            if prefix is None:
                raise Invalid(_NO_INDEX, field="file")
            written = 0
            for info in members:
                if _is_junk(info.filename) or not info.filename.startswith(prefix):
                    continue
                relative = info.filename[len(prefix) :]
                if not relative.strip("/"):
                    continue
                target = (root / relative).resolve()
                if target == root or not target.is_relative_to(root):
                    raise Invalid(_escapes(info.filename), field="file")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > settings.content_max_unpacked_bytes:
                            raise Invalid(_bomb(settings), field="file")
                        out.write(chunk)
    except Invalid:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
    ) as exc:
        # the last three: a member that is both a file and a folder
        shutil.rmtree(dest, ignore_errors=True)
        raise Invalid("This zip file is damaged and cannot be opened.", field="file") from exc
    except NotImplementedError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise Invalid(_UNSUPPORTED_COMPRESSION, field="file") from exc
    except BaseException:  # a full disk is the server's problem, not the file's: keep its error
        shutil.rmtree(dest, ignore_errors=True)
        raise


_NO_INDEX = (
    "This zip file is not a presentation: an HTML5 package needs an index.html "
    "at its root or inside a single top-level folder."
)
_UNSUPPORTED_COMPRESSION = (
    "This zip file uses a compression method that is not supported: "
    "create it again with standard (deflate) compression."
)


def _inspect_zip(path: Path, settings: Settings) -> tuple[str, str, str]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = _check_zip_members(zf, settings)
    except zipfile.BadZipFile as exc:
        raise Invalid("This zip file is damaged and cannot be opened.", field="file") from exc
    names = {info.filename for info in members}
    if all(part in names for part in PPTX_PARTS):
        slides = sum(1 for name in names if PPTX_SLIDE.fullmatch(name))
        if slides == 0:
            raise Invalid("This presentation has no slides.", field="file")
        if slides > settings.content_max_pages:
            raise Invalid(
                f"This presentation has {slides} slides; the limit is "
                f"{settings.content_max_pages}.",
                field="file",
            )
        return (
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ".pptx",
        )
    if _html5_prefix(members) is None:
        raise Invalid(_NO_INDEX, field="file")
    return "html5", "application/zip", ".zip"


def _check_zip_members(zf: zipfile.ZipFile, settings: Settings) -> list[zipfile.ZipInfo]:
    """Refuse a zip whose names escape its folder or whose sizes look like a zip bomb."""
    members = zf.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise Invalid(
            f"This zip file looks like a zip bomb: it holds more than {MAX_ZIP_MEMBERS:,} files.",
            field="file",
        )
    total = 0
    for info in members:
        name = info.filename
        if (
            name.startswith("/")
            or "\\" in name
            or DRIVE.match(name)
            or ".." in name.split("/")
            or stat.S_ISLNK(info.external_attr >> 16)
        ):
            raise Invalid(_escapes(name), field="file")
        if info.flag_bits & 0x1:
            raise Invalid(
                "This zip file is password-protected: upload it without a password.",
                field="file",
            )
        total += info.file_size
        if total > settings.content_max_unpacked_bytes:
            raise Invalid(_bomb(settings), field="file")
        if info.file_size > RATIO_CHECK_ABOVE and info.file_size > MAX_ZIP_RATIO * max(
            info.compress_size, 1
        ):
            raise Invalid(
                f"This zip file looks like a zip bomb: {name} is compressed more than "
                f"{MAX_ZIP_RATIO} to 1.",
                field="file",
            )
    return members


def _html5_prefix(members: list[zipfile.ZipInfo]) -> str | None:
    """The folder holding index.html: "" at the root, "name/" for a single top-level folder."""
    names = [info.filename for info in members if not _is_junk(info.filename)]
    if "index.html" in names:
        return ""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1:
        prefix = f"{tops.pop()}/"
        if f"{prefix}index.html" in names:
            return prefix
    return None


def _is_junk(name: str) -> bool:
    return name.startswith(MAC_JUNK) or name.rsplit("/", 1)[-1] == MAC_JUNK_FILE


def _looks_like_image(head: bytes) -> bool:
    return (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")
        or head.startswith((b"GIF87a", b"GIF89a"))
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
    )


def _inspect_image(path: Path) -> tuple[str, str]:
    damaged = Invalid("This image is damaged and cannot be opened.", field="file")
    try:
        with Image.open(path) as image:
            format_ = image.format
            image.verify()
        # verify() does not decode pixels: a truncated image only shows when loaded
        with Image.open(path) as image:
            image.load()
    except Image.DecompressionBombError as exc:
        raise Invalid(
            "This image has too many pixels: reduce its size and upload it again.", field="file"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise damaged from exc
    if format_ not in IMAGES:
        raise damaged
    return IMAGES[format_]


def _inspect_pdf(path: Path, settings: Settings) -> None:
    with PDFIUM_LOCK:
        pages = _count_pages(path)
    if pages == 0:
        raise Invalid("This PDF has no pages.", field="file")
    if pages > settings.content_max_pages:
        raise Invalid(
            f"This PDF has {pages} pages; the limit is {settings.content_max_pages}.", field="file"
        )


def _count_pages(path: Path) -> int:
    # The raw calls, not pdfium.PdfDocument: it also fails for a page-less file, and then
    # reports FPDF_GetLastError() left over from an earlier failed load (a stale
    # "password" code). Read after a failed load, the code is this file's own.
    document = pdfium_c.FPDF_LoadDocument(os.fsencode(path) + b"\0", None)
    if not document:
        code = pdfium_c.FPDF_GetLastError()
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise Invalid(
                "This PDF is password-protected: remove the password and upload it again.",
                field="file",
            )
        raise Invalid("This PDF is damaged and cannot be opened.", field="file")
    try:
        return pdfium_c.FPDF_GetPageCount(document)
    finally:
        pdfium_c.FPDF_CloseDocument(document)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _escapes(name: str) -> str:
    return f"This zip file holds a path that escapes its folder: {name[:200]}"


def _bomb(settings: Settings) -> str:
    return (
        "This zip file looks like a zip bomb: it would unpack to more than "
        f"{_mb(settings.content_max_unpacked_bytes)} MB."
    )


def _mb(size: int) -> str:
    megabytes = size / 1_000_000
    text = f"{megabytes:,.1f}".removesuffix(".0")
    return text if text != "0" else f"{megabytes:.2g}"


def _name(filename: str) -> str:
    return f"“{filename}”" if filename else "This file"
