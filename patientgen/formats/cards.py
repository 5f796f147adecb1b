"""`cards.pdf`: printable casualty cards, one A5 page per casualty, in patient order.

Each page is laid out like a field medical card, for the role player who plays the casualty:
- a band across the top in the triage colour of the first triage given (NATO: T1 red, T2
  yellow, T3 green, T4 blue; black for a casualty killed before anyone triaged them) with the
  category's name;
- who they are, and a QR code holding the casualty id (the `id` of every other output);
- MIST: Mechanism (and time of wounding, mass-casualty event), Injuries (with body site and
  severity), Signs (every vital-sign set over time, where and when taken, with its NEWS2 score;
  a notable deterioration, formats.news2, is marked `!`), Treatment (by place and time);
- for the role player: the path through the chain and how it ends.

Determinism: reportlab runs in its invariant mode (fixed creation date and document id) with the
PDF standard fonts (Helvetica; nothing embedded, so no font file on the machine matters). Those
fonts hold Latin-1 text only: every text is folded to it (`latin`: Greek and Cyrillic names in
the generator's own transliteration, other letters without their accents, anything else `?`);
the QR code's casualty id leads to the exact spelling in the other outputs.

Chunks: a PDF cannot be joined by concatenation. A chunk writes a compact *part* instead (one
JSON card per line, `record`), and the join renders the whole PDF from the parts in chunk order
(`render`), one page at a time; a one-chunk run renders its one part the same way, so the bytes
never depend on the chunking. reportlab keeps every page of a document in memory until it is
saved (about 10 KB a page), so a job may ask for cards for at most MAX_PATIENTS casualties
(refused at submit, formats.bundle.format_problems).
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm

from patientgen.formats import news2
from patientgen.generator import codes
from patientgen.generator.names import transliterate
from patientgen.generator.patient import Patient

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

# segno, Pillow and reportlab's canvas and fonts are imported where a card is made or drawn:
# together they took 80 ms of the start of every process that imports the formats (each CLI
# command, worker and API), most of which never makes a card.

FILE = "cards.pdf"
#: The most casualties a job may ask cards for (one page each, held in memory until saved).
MAX_PATIENTS = 20_000
PAGE_SIZE = A5  # points: 148 x 210 mm
BAND_HEIGHT = 20 * mm
#: Band colours (RGB 0-255) by the first triage; "none": killed before anyone triaged them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "T1": (204, 0, 0),
    "T2": (255, 204, 0),
    "T3": (0, 153, 51),
    "T4": (0, 82, 204),
    "none": (0, 0, 0),
}
_DARK_TEXT = frozenset({"T2", "T3"})
QR_SIZE = 32 * mm
QR_BORDER = 2  # modules of quiet zone (white) around the code
_QR_PIXELS = 8  # image pixels a module
_MARGIN = 8 * mm
_FOOTER = 12 * mm
_FONT, _BOLD = "Helvetica", "Helvetica-Bold"
#: Letters that Unicode does not decompose into a Latin letter and an accent.
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "ħ": "h", "Ħ": "H"})


def latin(text: str, nation: str | None = None) -> str:
    """`text` in the characters the standard fonts can show (see the module docstring)."""
    if nation is not None:
        text = transliterate(text, nation)
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text.translate(_FOLD):
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char)[:1]
            out.append(base if base.isascii() and base.isprintable() else "?")
    return "".join(out)


def _hm(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %b %H:%MZ")


def record(p: Patient) -> dict[str, Any]:
    """The card of one patient: every text it shows, ready to draw (the part's one line)."""
    injured = p.injured_at
    birth = p.birth_date
    age = injured.year - birth.year - ((injured.month, injured.day) < (birth.month, birth.day))
    vitals: list[list[Any]] = []
    previous = None
    for visit in p.visits:
        v = visit.vitals
        if v is None:
            continue
        worse = previous is not None and bool(news2.deterioration(previous, v))
        vitals.append([_hm(v.taken_at), visit.facility_id, v.heart_rate, v.respiratory_rate,
                       f"{v.systolic_bp}/{v.diastolic_bp}", v.spo2, f"{v.temperature_c:.1f}",
                       v.gcs, v.avpu, v.pain, news2.score(v), worse])  # fmt: skip
        previous = v
    treatment = [
        [f"{visit.facility_id} {_hm(visit.procedures[0].performed_at)}",
         ", ".join(proc.display for proc in visit.procedures)]
        for visit in p.visits
        if visit.procedures
    ]  # fmt: skip
    mechanism = p.mechanism or p.category.replace("_", " ")
    if p.category == "battle_injury":
        mechanism += f" ({p.warfare})"
    return {
        "id": p.id,
        "qr": qr_rows(p.id),
        "index": p.index,
        "name": f"{latin(p.family_name, p.nationality).upper()}, "
        f"{latin(p.given_name, p.nationality)}",
        "service": latin(p.service_number),
        "nation": p.nationality,
        "sex": "M" if p.gender == "male" else "F",
        "born": f"{birth.isoformat()} (age {age})",
        "blood": p.blood_group,
        "front": latin(p.front),
        "category": p.category.replace("_", " "),
        "triage": p.triage or "none",
        "mechanism": f"{mechanism}, wounded {_hm(injured)}"
        + (f", mass-casualty event {p.event_id}" if p.event_id else ""),
        "injuries": [
            f"{c.display}, {c.body_site + ', ' if c.body_site else ''}{c.severity}"
            for c in p.conditions
        ],
        "vitals": vitals,
        "treatment": treatment,
        "path": " > ".join(
            f"{v.facility_id} {_hm(v.arrived_at)}" for v in p.visits if v.facility != "POI"
        )
        or "none: stays at the point of injury",
        "outcome": f"{p.outcome} at {p.outcome_facility}, {_hm(p.outcome_at)}",
    }


def qr_rows(text: str) -> list[str]:
    """The QR code of `text` (segno, error correction M), one string of 0/1 per row of modules;
    computed in the chunk, where it costs most of a card's time, so the join only draws."""
    import segno

    return ["".join("1" if module else "0" for module in row) for row in segno.make_qr(
        text, error="m").matrix]  # fmt: skip


def encode(p: Patient) -> bytes:
    """One line of a chunk's part."""
    return orjson.dumps(record(p)) + b"\n"


def read_part(lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield orjson.loads(line)


def render(cards: Iterable[dict[str, Any]]) -> bytes:
    """The PDF of the cards, one page each, in the order given (a page saying so when empty)."""
    from reportlab.pdfgen.canvas import Canvas

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
        from reportlab.lib.utils import simpleSplit

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
    from reportlab.pdfbase.pdfmetrics import stringWidth

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
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    modules = len(matrix) + 2 * QR_BORDER
    blank, quiet = "0" * modules, "0" * QR_BORDER
    rows = [blank] * QR_BORDER + [quiet + row + quiet for row in matrix] + [blank] * QR_BORDER
    data = bytes(0 if bit == "1" else 255 for row in rows for bit in row)  # dark modules black
    image = Image.frombytes("L", (modules, modules), data)
    # sharp-edged modules even in a viewer that smooths a scaled-up image
    image = image.resize((modules * _QR_PIXELS,) * 2, Image.Resampling.NEAREST)
    canvas.drawImage(ImageReader(image), x, y, QR_SIZE, QR_SIZE)
