"""Text out of files: per page, slide, sheet or section, with the document's own metadata."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import PurePath

FORMATS = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}
# an Office file is a zip: what it may unpack to, at most
MAX_UNPACKED = 1_000_000_000
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# a plain-text "page" when the format has none
TEXT_PAGE_CHARS = 4000


class Unreadable(Exception):
    """The file cannot be read: corrupt, encrypted, empty or of a format we do not take."""


@dataclass
class Section:
    page: int  # 1-based
    location: str  # "page 3", "slide 2", "Sheet1", "§ Results"
    text: str
    heading: str | None = None


@dataclass
class Extracted:
    sections: list[Section]
    title: str | None = None
    authors: str | None = None
    doc_date: date | None = None
    pages: int = 0
    meta: dict = field(default_factory=dict)


def media_type(filename: str) -> str | None:
    return FORMATS.get(PurePath(filename).suffix.lower())


def extract(filename: str, data: bytes) -> Extracted:
    """The text of a file by its extension; raises Unreadable with a reason a person can act on."""
    suffix = PurePath(filename).suffix.lower()
    if suffix not in FORMATS:
        kinds = ", ".join(sorted({s.lstrip(".").upper() for s in FORMATS}))
        raise Unreadable(f"{suffix or 'no extension'} is not a format we index ({kinds}).")
    if not data:
        raise Unreadable("The file is empty.")
    reader = {
        ".pdf": _pdf,
        ".docx": _docx,
        ".pptx": _pptx,
        ".xlsx": _xlsx,
        ".html": _html,
        ".htm": _html,
        ".md": _markdown,
        ".markdown": _markdown,
        ".txt": _text,
    }[suffix]
    if suffix in (".docx", ".pptx", ".xlsx"):
        if data.startswith(OLE_MAGIC):
            raise Unreadable("The file is password-protected (encrypted Office document).")
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise Unreadable("The file is corrupt: it is not a valid Office document.")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED:  # a zip bomb would take the worker's memory
            raise Unreadable(f"The file unpacks to over {MAX_UNPACKED // 1_000_000} MB: refused.")
    try:
        out = reader(data)
    except Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser fails its own way on bad bytes
        raise Unreadable(f"The file is corrupt or unreadable ({exc.__class__.__name__}).") from exc
    out.sections = [s for s in out.sections if s.text.strip()]
    if not out.sections:
        raise Unreadable("No text was found in the file (a scan without text layer?).")
    out.pages = out.pages or max(s.page for s in out.sections)
    return out


def _clean(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r"-\n(?=[a-zà-ÿ])", "", text)  # words hyphenated across lines
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_date(raw: str | None) -> date | None:
    m = re.match(r"D?:?(\d{4})(\d{2})?(\d{2})?", raw or "")
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2] or 1), int(m[3] or 1))
    except ValueError:
        return None


def _pdf(data: bytes) -> Extracted:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Unreadable("The PDF is password-protected.") from exc
        raise Unreadable(f"The PDF is corrupt ({exc}).") from exc
    try:
        sections = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            sections.append(Section(i + 1, f"p. {i + 1}", _clean(textpage.get_text_range())))
            textpage.close()
            page.close()
        meta = pdf.get_metadata_dict(skip_empty=True)
        return Extracted(
            sections,
            title=meta.get("Title"),
            authors=meta.get("Author"),
            doc_date=_pdf_date(meta.get("CreationDate")),
            pages=len(pdf),
        )
    finally:
        pdf.close()


def _core(props) -> dict:
    created = getattr(props, "created", None)
    return {
        "title": (props.title or None),
        # python-docx and python-pptx say author, openpyxl says creator
        "authors": (getattr(props, "author", None) or getattr(props, "creator", None) or None),
        "doc_date": created.date() if created else None,
    }


def _docx(data: bytes) -> Extracted:
    import docx

    document = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    heading, lines = None, []

    def close():
        if lines:
            n = len(sections) + 1
            label = f"§ {heading}"[:200] if heading else f"§ {n}"
            sections.append(Section(n, label, _clean("\n".join(lines)), heading))

    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = docx.text.paragraph.Paragraph(block, document)
            style = (para.style.name if para.style is not None else "") or ""
            if style.lower().startswith(("heading 1", "heading 2", "title")) and para.text.strip():
                close()
                heading, lines = para.text.strip(), [para.text.strip()]
                continue
            lines.append(para.text)
        elif tag == "tbl":
            table = docx.table.Table(block, document)
            for row in table.rows:
                lines.append(" | ".join(c.text.strip() for c in row.cells))
    close()
    return Extracted(sections, **_core(document.core_properties))


def _pptx(data: bytes) -> Extracted:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    sections = []
    for n, slide in enumerate(deck.slides, start=1):
        parts, title = [], None
        for shape in slide.shapes:
            if shape.has_text_frame and shape.text_frame.text.strip():
                parts.append(shape.text_frame.text)
                if title is None and shape == getattr(slide.shapes, "title", None):
                    title = shape.text_frame.text.strip()
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    parts.append(" | ".join(c.text.strip() for c in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
        sections.append(Section(n, f"slide {n}", _clean("\n".join(parts)), title))
    return Extracted(sections, pages=len(deck.slides), **_core(deck.core_properties))


def _xlsx(data: bytes) -> Extracted:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sections = []
    try:
        for n, sheet in enumerate(book.worksheets, start=1):
            rows = []
            for row in sheet.iter_rows(values_only=True):
                cells = [str(v) for v in row if v is not None and str(v).strip()]
                if cells:
                    rows.append(" | ".join(cells))
            sections.append(Section(n, sheet.title[:200], _clean("\n".join(rows)), sheet.title))
        return Extracted(sections, pages=len(book.worksheets), **_core(book.properties))
    finally:
        book.close()


class _HtmlText(HTMLParser):
    BLOCKS = {"p", "div", "li", "br", "tr", "table", "section", "article", "h1", "h2", "h3"}
    SKIP = {"script", "style", "noscript", "template", "nav"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[tuple[str | None, list[str]]] = [(None, [])]
        self._skip = 0
        self._in_title = False
        self._heading: list[str] | None = None
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            a = dict(attrs)
            if a.get("name") in ("author", "date", "description") and a.get("content"):
                self.meta[a["name"]] = a["content"]
        elif tag in ("h1", "h2"):
            self._heading = []
        if tag in self.BLOCKS:
            self.sections[-1][1].append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag in ("h1", "h2") and self._heading is not None:
            text = " ".join("".join(self._heading).split())
            self._heading = None
            if text:
                self.sections.append((text, [text, "\n"]))

    def handle_data(self, data):
        if self._skip:
            return
        if self._in_title:
            self.title += data
        elif self._heading is not None:
            self._heading.append(data)
        else:
            self.sections[-1][1].append(data)


def _html(data: bytes) -> Extracted:
    text = _decode(data)
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    sections = []
    for heading, parts in parser.sections:
        body = _clean("".join(parts))
        if body:
            n = len(sections) + 1
            sections.append(
                Section(n, f"§ {heading}"[:200] if heading else f"§ {n}", body, heading)
            )
    doc_date = None
    if parser.meta.get("date"):
        try:
            doc_date = date.fromisoformat(parser.meta["date"][:10])
        except ValueError:
            doc_date = None
    return Extracted(
        sections,
        title=" ".join(parser.title.split()) or None,
        authors=parser.meta.get("author"),
        doc_date=doc_date,
    )


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _markdown(data: bytes) -> Extracted:
    text = _decode(data)
    sections, heading, lines, title = [], None, [], None

    def close():
        body = _clean("\n".join(lines))
        if body:
            n = len(sections) + 1
            sections.append(
                Section(n, f"§ {heading}"[:200] if heading else f"§ {n}", body, heading)
            )

    for line in text.splitlines():
        m = re.match(r"^(#{1,2})\s+(.+?)\s*#*\s*$", line)
        if m:
            close()
            heading, lines = m[2], [m[2]]
            title = title or (m[2] if m[1] == "#" else None)
            continue
        lines.append(line)
    close()
    return Extracted(sections, title=title)


def _text(data: bytes) -> Extracted:
    text = _clean(_decode(data))
    if "\x0c" in text:  # form feeds: the text's own pages
        pages = text.split("\x0c")
    else:
        pages, current = [], ""
        for para in text.split("\n\n"):
            if current and len(current) + len(para) > TEXT_PAGE_CHARS:
                pages.append(current)
                current = ""
            current += para + "\n\n"
        pages.append(current)
    sections = [Section(i, f"p. {i}", p.strip()) for i, p in enumerate(pages, start=1)]
    return Extracted(sections)
