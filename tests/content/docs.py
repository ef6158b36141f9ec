"""Real documents generated for the content tests: PDFs, decks, packages, images, bad zips."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from fpdf import FPDF
from PIL import Image
from pptx import Presentation

INDEX_HTML = """<!doctype html>
<html lang="en">
<head><title>Cardio launch</title><style>h1 { color: red; }</style></head>
<body>
  <h1>Welcome &amp; hello</h1>
  <p>Dosing   schedule
  explained.</p>
  <script>var secret = "not page text";</script>
</body>
</html>
"""


def make_pdf(path: Path, pages: int = 3, title: str = "Deck", landscape: bool = False) -> Path:
    pdf = FPDF(orientation="L" if landscape else "P")
    pdf.set_font("Helvetica", size=28)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(text=f"Slide {n}: {title} page {n}")
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=28)
    pdf.cell(text="Confidential")
    pdf.output(str(path))
    return path


def make_corrupt_pdf(path: Path) -> Path:
    make_pdf(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_pageless_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty (fpdf2 always adds a page)."""
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[]/Count 0>>"]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj%sendobj\n" % (number, obj)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(body)
    return path


def make_pptx(path: Path, slides: int = 3) -> Path:
    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for n in range(1, slides + 1):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide {n}: launch"
        slide.placeholders[1].text = f"Key message number {n}"
    deck.save(str(path))
    return path


def make_html5_zip(path: Path, folder: str = "") -> Path:
    """An HTML5 package, at the zip's root or inside ``folder`` (with Finder's extra files)."""
    prefix = f"{folder}/" if folder else ""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if folder:
            zf.writestr(f"{prefix}", "")
            zf.writestr(f"__MACOSX/{prefix}._index.html", b"\x00\x05\x16\x07")
            zf.writestr(f"{prefix}.DS_Store", b"\x00\x00\x00\x01Bud1")
        zf.writestr(f"{prefix}index.html", INDEX_HTML)
        zf.writestr(f"{prefix}css/style.css", "body { margin: 0; }")
        zf.writestr(f"{prefix}js/app.js", "console.log('ready');")
    return path


def make_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def make_zip_slip(path: Path, name: str = "../evil.txt") -> Path:
    return make_zip(path, {"index.html": INDEX_HTML, name: "owned"})


def make_zip_symlink(path: Path) -> Path:
    link = zipfile.ZipInfo("assets")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("index.html", INDEX_HTML)
        zf.writestr(link, "/etc")
    return path


def make_zip_bomb(path: Path, megabytes: int = 50) -> Path:
    """An index.html and a member of ``megabytes`` MB of zeros, deflated about 1000 to 1."""
    zeros = bytes(1_000_000)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("index.html", INDEX_HTML)
        with zf.open("zeros.bin", "w") as member:
            for _ in range(megabytes):
                member.write(zeros)
    return path


def make_png(path: Path, size: tuple[int, int] = (400, 300), alpha: bool = False) -> Path:
    image = Image.new("RGBA" if alpha else "RGB", size, (20, 120, 200, 128 if alpha else 255))
    image.save(path, "PNG")
    return path


def make_image(path: Path, format_: str, size: tuple[int, int] = (400, 300)) -> Path:
    Image.new("RGB", size, (200, 60, 30)).save(path, format_)
    return path


def make_mp4(path: Path) -> Path:
    """The start of an MP4: an ``ftyp`` box at offset 4 (the kind is told from that alone)."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    path.write_bytes(ftyp + b"\x00\x00\x00\x08free" + bytes(1024))
    return path


def make_webm(path: Path) -> Path:
    """The start of a WebM: an EBML header whose DocType is "webm"."""
    header = bytes.fromhex("1A45DFA3") + b"\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04"
    header += b"\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02"
    path.write_bytes(header + bytes(1024))
    return path


def make_legacy_ppt(path: Path) -> Path:
    """What an old .ppt or an encrypted .pptx starts with: an OLE compound file header."""
    path.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + bytes(4096))
    return path
