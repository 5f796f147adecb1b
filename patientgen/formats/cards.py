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

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from patientgen.formats import news2
from patientgen.generator.names import transliterate
from patientgen.generator.patient import Patient, taken

FILE = "cards.pdf"
#: The most casualties a job may ask cards for (one page each, held in memory until saved).
MAX_PATIENTS = 20_000
#: Band colours (RGB 0-255) by the first triage; "none": killed before anyone triaged them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "T1": (204, 0, 0),
    "T2": (255, 204, 0),
    "T3": (0, 153, 51),
    "T4": (0, 82, 204),
    "none": (0, 0, 0),
}
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
        for v in taken(visit):
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
    import segno  # here, not above: only a job with cards needs it (see render)

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
    """The PDF of the cards, one page each, in the order given (a page saying so when empty).

    The drawing is in cards_pdf, imported here: reportlab and Pillow took 80 ms of the start of
    every process that imports the formats (each CLI command, worker and API), and most never
    draw a card."""
    from patientgen.formats import cards_pdf

    return cards_pdf.render(cards)
