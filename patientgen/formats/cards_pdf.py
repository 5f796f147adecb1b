"""Drawing `cards.pdf` (reportlab, Pillow): the layout of a card's page, for cards.render, which
alone imports this module. What a card says, and the invariants of the file (determinism,
Latin-1 text, chunks), are in cards.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from PIL import Image
from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from patientgen.formats.cards import COLOURS, latin
from patientgen.generator import codes

PAGE_SIZE = A5  # points: 148 x 210 mm
BAND_HEIGHT = 20 * mm
_DARK_TEXT = frozenset({"T2", "T3"})
QR_SIZE = 32 * mm
QR_BORDER = 2  # modules of quiet zone (white) around the code
_QR_PIXELS = 8  # image pixels a module
_MARGIN = 8 * mm
_FOOTER = 12 * mm
_FONT, _BOLD = "Helvetica", "Helvetica-Bold"


def render(cards: Iterable[dict[str, Any]]) -> bytes:
    """See cards.render."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=PAGE_SIZE, invariant=1, pageCompression=1)
    canvas.setTitle("Casualty cards (synthetic, for exercises)")
    canvas.setAuthor("patientgen")
    canvas.setCreator("patientgen")
    pages = 0
    for card in cards:
        _draw(canvas, card)
        canvas.showPage()
        pages += 1
    if pages == 0:
        canvas.setFont(_FONT, 12)
        canvas.drawString(_MARGIN, PAGE_SIZE[1] / 2, "No casualties in this job.")
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


class _Cursor:
    """Writes lines downwards from the top of the free space; stops above the footer."""

    def __init__(self, canvas: Canvas, top: float) -> None:
        self.canvas = canvas
        self.y = top
        self.full = False

    def room(self, height: float) -> bool:
        if self.y - height < _FOOTER:
            self.full = True
        return not self.full

    def line(self, text: str, size: float = 8, font: str = _FONT, indent: float = 0) -> None:
        width = PAGE_SIZE[0] - 2 * _MARGIN - indent
        for part in simpleSplit(latin(text), font, size, width):
            if not self.room(size * 1.3):
                return
            self.y -= size * 1.3
            self.canvas.setFont(font, size)
            self.canvas.drawString(_MARGIN + indent, self.y, part)

    def heading(self, letter: str, title: str) -> None:
        if not self.room(7 * mm):
            return
        self.y -= 6 * mm
        canvas = self.canvas
        canvas.setFillColorRGB(0.88, 0.88, 0.88)
        canvas.rect(_MARGIN, self.y - 1.2 * mm, PAGE_SIZE[0] - 2 * _MARGIN, 5 * mm, 0, 1)
        canvas.setFillColorRGB(0, 0, 0)
        canvas.setFont(_BOLD, 10)
        canvas.drawString(_MARGIN + 1.5 * mm, self.y, letter)
        canvas.setFont(_BOLD, 8)
        canvas.drawString(_MARGIN + 7 * mm, self.y, title)
        self.y -= 1.5 * mm


def _draw(canvas: Canvas, card: dict[str, Any]) -> None:
    width, height = PAGE_SIZE
    triage = card["triage"]
    red, green, blue = COLOURS[triage]
    canvas.setFillColorRGB(red / 255, green / 255, blue / 255)
    canvas.rect(0, height - BAND_HEIGHT, width, BAND_HEIGHT, 0, 1)
    if triage in _DARK_TEXT:
        canvas.setFillColorRGB(0, 0, 0)
    else:
        canvas.setFillColorRGB(1, 1, 1)
    label = f"{triage} {codes.TRIAGE[triage].upper()}" if triage in codes.TRIAGE else "KIA"
    canvas.setFont(_BOLD, 20)
    canvas.drawString(_MARGIN, height - 13 * mm, label)
    canvas.setFont(_BOLD, 8)
    canvas.drawRightString(width - _MARGIN, height - 9 * mm, "FIELD MEDICAL CARD - EXERCISE")
    canvas.setFont(_FONT, 8)
    canvas.drawRightString(width - _MARGIN, height - 14 * mm, f"casualty #{card['index'] + 1}")
    canvas.setFillColorRGB(0, 0, 0)
    _qr(canvas, card["qr"], width - _MARGIN - QR_SIZE, height - BAND_HEIGHT - 3 * mm - QR_SIZE)
    canvas.setFont(_FONT, 5.5)
    canvas.drawRightString(width - _MARGIN, height - BAND_HEIGHT - 5 * mm - QR_SIZE, card["id"])

    top = height - BAND_HEIGHT - 2 * mm
    beside_qr = width - 2 * _MARGIN - QR_SIZE - 3 * mm  # the identity block's width
    canvas.setFont(_BOLD, 12)
    canvas.drawString(_MARGIN, top - 5 * mm, _fit(latin(card["name"]), _BOLD, 12, beside_qr))
    facts = [
        ("Service no", card["service"]),
        ("Nation", card["nation"]),
        ("Sex", card["sex"]),
        ("Born", card["born"]),
        ("Blood", card["blood"]),
        ("Front", card["front"]),
        ("Category", card["category"]),
    ]
    y = top - 10 * mm
    for name, value in facts:
        canvas.setFont(_BOLD, 7.5)
        canvas.drawString(_MARGIN, y, name)
        canvas.setFont(_FONT, 7.5)
        value = _fit(latin(value), _FONT, 7.5, beside_qr - 17 * mm)
        canvas.drawString(_MARGIN + 17 * mm, y, value)
        y -= 3.6 * mm

    cursor = _Cursor(canvas, min(y, height - BAND_HEIGHT - 8 * mm - QR_SIZE))
    cursor.heading("M", "MECHANISM")
    cursor.line(card["mechanism"])
    cursor.heading("I", "INJURIES")
    for injury in card["injuries"][:8] or ["none recorded"]:
        cursor.line(injury)
    if len(card["injuries"]) > 8:
        cursor.line(f"... and {len(card['injuries']) - 8} more")
    cursor.heading("S", "SIGNS (vital signs over time; ! notable deterioration)")
    _vitals(cursor, card["vitals"])
    cursor.heading("T", "TREATMENT")
    for place, done in card["treatment"] or [["", "none"]]:
        cursor.line(f"{place}: {done}" if place else done)
    cursor.heading("R", "ROLE PLAYER: PATH AND OUTCOME")
    cursor.line(card["path"])
    cursor.line(f"Outcome: {card['outcome']}", font=_BOLD)

    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont(_BOLD, 7)
    canvas.drawCentredString(width / 2, 6 * mm, "EXERCISE - SYNTHETIC CASUALTY - NOT A REAL PERSON")


#: The vital-signs table: (heading, x in mm from the margin); a cell is cut to its column.
_VITAL_COLUMNS = (
    ("time", 0),
    ("place", 18),
    ("HR", 42),
    ("RR", 49),
    ("BP", 56),
    ("SpO2", 68),
    ("T \u00b0C", 77),
    ("GCS", 86),
    ("AVPU", 93),
    ("pain", 102),
    ("NEWS2", 110),
)
_MARK_X = 124  # mm: the `!` of a notable deterioration


def _fit(text: str, font: str, size: float, width: float) -> str:
    """`text` cut (with `..`) to fit `width` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "..", font, size) > width:
        text = text[:-1]
    return text + ".."


def _vitals(cursor: _Cursor, rows: list[list[Any]]) -> None:
    canvas = cursor.canvas
    if not rows:
        cursor.line("not taken")
        return
    size = 7.0
    if not cursor.room(size * 1.4):
        return
    cursor.y -= size * 1.4
    canvas.setFont(_BOLD, size)
    for name, x in _VITAL_COLUMNS:
        canvas.drawString(_MARGIN + x * mm, cursor.y, name)
    canvas.setFont(_FONT, size)
    for row in rows:
        if not cursor.room(size * 1.4):
            return
        cursor.y -= size * 1.4
        *values, worse = row
        edges = [x for _, x in _VITAL_COLUMNS[1:]] + [_MARK_X]
        for (_, x), end, value in zip(_VITAL_COLUMNS, edges, values, strict=True):
            cell = _fit(latin(str(value)), _FONT, size, (end - x - 1) * mm)
            canvas.drawString(_MARGIN + x * mm, cursor.y, cell)
        if worse:
            canvas.setFont(_BOLD, size)
            canvas.drawString(_MARGIN + _MARK_X * mm, cursor.y, "!")
            canvas.setFont(_FONT, size)


def _qr(canvas: Canvas, matrix: list[str], x: float, y: float) -> None:
    """The QR code (qr_rows), quiet zone included, as a small grey-scale image: a few hundred
    bytes in the PDF, where drawn modules cost kilobytes of page content
    (and reportlab holds every page until it saves)."""
    modules = len(matrix) + 2 * QR_BORDER
    blank, quiet = "0" * modules, "0" * QR_BORDER
    rows = [blank] * QR_BORDER + [quiet + row + quiet for row in matrix] + [blank] * QR_BORDER
    data = bytes(0 if bit == "1" else 255 for row in rows for bit in row)  # dark modules black
    image = Image.frombytes("L", (modules, modules), data)
    # sharp-edged modules even in a viewer that smooths a scaled-up image
    image = image.resize((modules * _QR_PIXELS,) * 2, Image.Resampling.NEAREST)
    canvas.drawImage(ImageReader(image), x, y, QR_SIZE, QR_SIZE)
