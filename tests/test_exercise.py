"""The exercise package (issue 11, item 5): the inject list (`mel.csv`) and the casualty cards
(`cards.pdf`) of every preset, read back as a user would: the CSV parsed, the PDF rendered to
images by PDFium (pypdfium2) and its QR codes decoded by zxing-cpp."""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2
import pytest
import zxingcpp
from formats_support import digests, run

from patientgen.formats import bundle, cards, mel, news2
from patientgen.formats.bundle import exercise as exercise_merge
from patientgen.generator import generate
from patientgen.generator.patient import Patient, Vitals
from patientgen.scenario import PRESETS, Scenario

N = 90
FORMATS = ["mel", "cards"]
DPI = 100


def _scenario(preset: str) -> Scenario:
    return PRESETS[preset].scenario.model_copy(update={"total_patients": N})


@pytest.fixture(scope="module", params=list(PRESETS))
def job(request, tmp_path_factory) -> tuple[Scenario, list[Patient], Path]:
    """A preset's exercise files written in one chunk, with the patients they come from."""
    scenario = _scenario(request.param)
    out = tmp_path_factory.mktemp(request.param) / "out"
    bundle.write_all(scenario, FORMATS, out, chunk_size=1000)
    return scenario, list(generate(scenario)), out


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / mel.FILE, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert tuple(header) == mel.COLUMNS
        rows = [dict(zip(header, row, strict=True)) for row in reader]
    return rows


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the inject list ------------------------------------------------------------------------------


def test_injects_parse_numbered_and_sorted(job) -> None:
    _, _, out = job
    rows = _rows(out)
    assert rows, "every preset's casualties arrive somewhere"
    assert [int(r["serial"]) for r in rows] == list(range(1, len(rows) + 1))
    times = [r["exercise_time"] for r in rows]
    assert times == sorted(times)
    for r in rows:
        datetime.strptime(r["exercise_time"], "%Y-%m-%dT%H:%M:%SZ")
        assert all(r[c] for c in mel.COLUMNS), r
    assert b"\r\n" in (out / mel.FILE).read_bytes()[:2000]


def test_one_arrival_inject_per_arrival(job) -> None:
    _, patients, out = job
    expected = Counter(
        (_ts(v.arrived_at), v.facility_id, p.id)
        for p in patients
        for v in p.visits
        if v.facility != "POI"
    )
    found = Counter(
        (r["exercise_time"], r["to"], r["subject"].split()[3])
        for r in _rows(out)
        if r["subject"].startswith("Arrival of casualty ")
    )
    assert found == expected
    assert sum(found.values()) == sum(len(p.visits) - 1 for p in patients)


def test_one_inject_per_mass_casualty_event(job) -> None:
    _, patients, out = job
    per_event = Counter(p.event_id for p in patients if p.event_id is not None)
    events = [r for r in _rows(out) if r["subject"].startswith("MASCAL ")]
    found = {r["subject"].split()[1].rstrip(":"): r for r in events}
    assert len(found) == len(events)  # each event once
    assert set(found) == set(per_event)
    for event_id, row in found.items():
        assert row["subject"].split()[2] == str(per_event[event_id])
        assert row["method"] == "radio"
        injured = min(p.injured_at for p in patients if p.event_id == event_id)
        assert row["exercise_time"] <= _ts(injured)  # the event comes before its casualties


def test_mass_casualty_presets_have_events() -> None:
    """The drill built around mass-casualty events gives some at this size (else the test above
    would prove nothing)."""
    patients = list(generate(_scenario("mass-casualty-drill")))
    assert len({p.event_id for p in patients if p.event_id}) >= 3


def test_one_inject_per_notable_deterioration(job) -> None:
    _, patients, out = job
    expected = Counter()
    for p in patients:
        measured = [v for v in p.visits if v.vitals is not None]
        for before, after in itertools.pairwise(measured):
            if news2.deterioration(before.vitals, after.vitals):
                expected[(_ts(after.vitals.taken_at), after.facility_id, p.id)] += 1
    found = Counter(
        (r["exercise_time"], r["to"], r["subject"].split()[3])
        for r in _rows(out)
        if r["subject"].startswith("Deterioration of casualty ")
    )
    assert found == expected


def test_deteriorations_occur_across_presets() -> None:
    """At least some presets' casualties deteriorate at this size, so the test above counts
    real injects and not only zeros."""
    total = 0
    for preset in PRESETS:
        for p in generate(_scenario(preset)):
            measured = [v.vitals for v in p.visits if v.vitals is not None]
            total += sum(bool(news2.deterioration(a, b)) for a, b in itertools.pairwise(measured))
    assert total > 0


def _vitals(**values: object) -> Vitals:
    normal = dict(
        taken_at=datetime(2026, 1, 1, tzinfo=UTC), heart_rate=70, respiratory_rate=14,
        systolic_bp=120, diastolic_bp=80, spo2=98, temperature_c=37.0, gcs=15, avpu="A", pain=0,
    )  # fmt: skip
    return Vitals(**{**normal, **values})  # type: ignore[arg-type]


def test_news2_scores_follow_the_published_bands() -> None:
    assert news2.score(_vitals()) == 0
    # RR 25 (3), SpO2 91 (3), systolic 95 (2), pulse 115 (2), voice (3), 38.5 C (1)
    worst = _vitals(respiratory_rate=25, spo2=91, systolic_bp=95, heart_rate=115, avpu="V",
                    temperature_c=38.5)  # fmt: skip
    assert news2.parameters(worst) == (3, 3, 2, 2, 3, 1)
    assert news2.score(_vitals(respiratory_rate=9, spo2=94, systolic_bp=110, heart_rate=45)) == 4
    assert news2.score(_vitals(heart_rate=131, temperature_c=35.0, systolic_bp=220)) == 9
    # a rise of 2 into the urgent band, and a new red score, are deteriorations; less is not
    three = _vitals(heart_rate=115, spo2=94)  # 2 + 1
    four = _vitals(heart_rate=115, spo2=94, temperature_c=38.5)  # 2 + 1 + 1
    five = _vitals(heart_rate=115, spo2=94, respiratory_rate=21)  # 2 + 1 + 2
    assert news2.deterioration(three, five) == ["NEWS2 3 to 5"]
    assert not news2.deterioration(four, five)  # a rise of 1
    assert not news2.deterioration(_vitals(), three)  # a rise of 3 below the urgent band
    assert news2.deterioration(_vitals(), _vitals(avpu="P")) == ["consciousness now scores 3"]
    assert not news2.deterioration(_vitals(avpu="U"), _vitals(avpu="U", heart_rate=95))


# -- the same bytes whatever the chunking ---------------------------------------------------------


@pytest.mark.parametrize("preset", ["mass-casualty-drill", "urban-assault"])
def test_byte_identical_for_any_chunking(tmp_path, preset, monkeypatch) -> None:
    scenario = _scenario(preset)
    bundle.write_all(scenario, FORMATS, tmp_path / "one", chunk_size=1000)
    reference = digests(tmp_path / "one")
    bundle.write_all(scenario, FORMATS, tmp_path / "sevens", chunk_size=7)
    assert digests(tmp_path / "sevens") == reference
    ranges = bundle.chunk_ranges(N, 11)
    run(scenario, FORMATS, tmp_path / "reversed", ranges, list(range(len(ranges)))[::-1])
    assert digests(tmp_path / "reversed") == reference
    # more parts than the merge opens at once: merged in rounds through scratch files
    monkeypatch.setattr(exercise_merge, "FAN_IN", 3)
    run(scenario, FORMATS, tmp_path / "rounds", bundle.chunk_ranges(N, 4))
    assert digests(tmp_path / "rounds") == reference
    assert not [p for p in (tmp_path / "rounds.parts").iterdir() if ".tmp-" in p.name]


def test_a_mass_casualty_event_split_across_chunks_is_one_inject(tmp_path) -> None:
    scenario = _scenario("mass-casualty-drill")
    patients = list(generate(scenario))
    chunks = [{p.event_id for p in patients[a:b] if p.event_id} for a, b in [(0, 45), (45, N)]]
    assert chunks[0] & chunks[1], "an event with casualties on both sides of the split"
    run(scenario, ["mel"], tmp_path / "out", [(0, 45), (45, N)])
    subjects = [r["subject"] for r in _rows(tmp_path / "out") if r["subject"].startswith("MASCAL")]
    assert len(subjects) == len({s.split()[1] for s in subjects})


def test_manifest_counts_injects_and_cards(job) -> None:
    import orjson

    _, _, out = job
    listed = {f["name"]: f for f in orjson.loads((out / "manifest.json").read_bytes())["files"]}
    assert listed[mel.FILE]["records"] == len(_rows(out))
    assert listed[mel.FILE]["format"] == "mel"
    assert listed[cards.FILE]["records"] == N and listed[cards.FILE]["format"] == "cards"


# -- the casualty cards ---------------------------------------------------------------------------


#: The NATO triage colours: T1 red, T2 yellow, T3 green, T4 blue; black for the dead.
NATO = {"T1": "red", "T2": "yellow", "T3": "green", "T4": "blue", "none": "black"}


def _hue(rgb: tuple[int, int, int]) -> str:
    """Which of the five colours a pixel is, by its channels (independent of cards.COLOURS)."""
    r, g, b = rgb
    if max(rgb) < 60:
        return "black"
    if r > 150 and g > 150 and b < 100:
        return "yellow"
    if r > 150 and g < 80 and b < 80:
        return "red"
    if g > 100 and r < 80 and b < 120:
        return "green"
    if b > 150 and r < 80:
        return "blue"
    return f"other {rgb}"


def _band_colour(page: pypdfium2.PdfPage) -> tuple[int, int, int]:
    """The colour 3 mm in from the page's top left corner (inside the triage band)."""
    image = page.render(scale=DPI / 72).to_pil().convert("RGB")
    spot = round(3 / 25.4 * DPI)
    return image.getpixel((spot, spot))


def test_one_card_per_casualty_with_its_triage_colour(job) -> None:
    _, patients, out = job
    pdf = pypdfium2.PdfDocument(out / cards.FILE)
    try:
        assert len(pdf) == N
        for p, page in zip(patients, pdf, strict=True):
            width, height = page.get_size()
            assert (round(width), round(height)) == (420, 595)  # A5 in points
            colour = _band_colour(page)
            assert _hue(colour) == NATO[p.triage or "none"], (p.index, colour)
            want = cards.COLOURS[p.triage or "none"]
            assert all(abs(a - b) <= 8 for a, b in zip(colour, want, strict=True)), (p.index,)
            text = page.get_textpage().get_text_range()
            assert p.service_number in text or p.nationality in text
            assert "MECHANISM" in text and "INJURIES" in text and "SIGNS" in text
            assert "TREATMENT" in text
            for v in p.visits:  # the role player's vital signs over time, each set with its place
                if v.vitals is not None:
                    assert f"{v.vitals.taken_at:%d %b %H:%M}Z {v.facility_id}" in text, p.index
    finally:
        pdf.close()


def test_every_triage_colour_is_shown() -> None:
    """The presets' casualties together cover every band colour, so the check above sees each."""
    seen = {p.triage or "none" for preset in PRESETS for p in generate(_scenario(preset))}
    assert seen == set(cards.COLOURS)


def test_qr_codes_decode_to_the_casualty_ids(tmp_path) -> None:
    scenario = _scenario("urban-assault").model_copy(update={"total_patients": 30})
    bundle.write_all(scenario, ["cards"], tmp_path, chunk_size=1000)
    pdf = pypdfium2.PdfDocument(tmp_path / cards.FILE)
    try:
        decoded = []
        for page in pdf:
            image = page.render(scale=150 / 72).to_pil()
            found = [r.text for r in zxingcpp.read_barcodes(image)]
            assert len(found) == 1
            decoded.append(found[0])
    finally:
        pdf.close()
    assert decoded == [p.id for p in generate(scenario)]


def test_card_vitals_over_time(job) -> None:
    """The role player's table: each vital-sign set of the casualty, in order, with its score."""
    _, patients, _ = job
    for p in patients[:20]:
        card = cards.record(p)
        sets = [v for v in p.visits if v.vitals is not None]
        assert [row[1] for row in card["vitals"]] == [v.facility_id for v in sets]
        assert [row[2] for row in card["vitals"]] == [v.vitals.heart_rate for v in sets]
        assert [row[10] for row in card["vitals"]] == [news2.score(v.vitals) for v in sets]


def test_names_are_printable_in_the_standard_fonts() -> None:
    assert cards.latin("Παπαδόπουλος", "GRC").isascii()
    assert cards.latin("Иванов", "BGR") == "Ivanov"
    assert cards.latin("Wałęsa") == "Walesa"
    assert cards.latin("Müller") == "Müller"  # Latin-1 stays as it is
    assert cards.latin("Şahin").startswith("S")


def test_cards_are_refused_for_too_many_patients() -> None:
    assert bundle.format_problems(cards.MAX_PATIENTS, ["cards", "mel"]) == []
    (problem,) = bundle.format_problems(cards.MAX_PATIENTS + 1, ["csv", "cards"])
    assert "20,000" in problem and "cards" in problem
    assert bundle.format_problems(10_000_000, ["mel"]) == []


def test_cards_of_no_patients_are_one_page_saying_so() -> None:
    pdf = pypdfium2.PdfDocument(io.BytesIO(cards.render([])))
    try:
        assert len(pdf) == 1
        assert "No casualties" in pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
