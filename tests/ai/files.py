"""Real files of every indexed format, made on the spot (and broken ones)."""

from __future__ import annotations

import io

from fpdf import FPDF


def pdf(pages: list[str], *, title: str = "Report", password: str | None = None) -> bytes:
    doc = FPDF()
    doc.set_title(title)
    doc.set_author("Test Author")
    if password:
        doc.set_encryption(owner_password="owner", user_password=password)
    for body in pages:
        doc.add_page()
        doc.set_font("Helvetica", size=12)
        doc.multi_cell(0, 7, text=body)
    return bytes(doc.output())


def docx(sections: list[tuple[str, str]], *, title: str = "Policy") -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "HR team"
    for heading, body in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(body)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Site", "Badge office"
    table.cell(1, 0).text, table.cell(1, 1).text = "Lyon", "Building C, ground floor"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx(slides: list[tuple[str, str]], *, notes: str | None = None) -> bytes:
    from pptx import Presentation

    deck = Presentation()
    for heading, body in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx(sheets: dict[str, list[list]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def encrypted_docx(password: str = "secret") -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO(docx([("Secret", "Nobody should read this without the password.")]))
    out = io.BytesIO()
    OOXMLFile(plain).encrypt(password, out)
    return out.getvalue()
