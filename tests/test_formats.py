"""Output formats: parts join into the same bytes whatever the chunking; files parse; paging."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import threading
from pathlib import Path

import orjson
import pytest
from formats_support import digests, run, write_chunk

from patientgen.formats import FORMATS, bundle, summary
from patientgen.formats import csv as csv_format
from patientgen.formats.bundle import disk, layout
from patientgen.generator import generate
from patientgen.scenario import Scenario

N = 120
ALL = list(FORMATS)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(name="formats test", seed=7, total_patients=N, duration_days=5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, scenario) -> Path:
    """The whole range written as one chunk."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run(scenario, ALL, out, [(0, N)])
    return out


def test_chunk_ranges() -> None:
    assert bundle.chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert bundle.chunk_ranges(8, 4) == [(0, 4), (4, 8)]
    assert bundle.chunk_ranges(3, 100) == [(0, 3)]
    assert bundle.chunk_ranges(0, 5) == []
    with pytest.raises(ValueError):
        bundle.chunk_ranges(10, 0)


@pytest.mark.parametrize(
    ("label", "ranges", "order"),
    [
        ("two halves", [(0, 37), (37, N)], None),
        ("chunks of 50", bundle.chunk_ranges(N, 50), None),
        ("chunks of 7, reversed", bundle.chunk_ranges(N, 7), list(range(17, -1, -1))),
        ("chunks of 1 at the start", [(0, 1), (1, 2), (2, N)], None),
    ],
)
def test_join_is_byte_identical_for_any_chunking(
    tmp_path, scenario, reference, label, ranges, order
) -> None:
    out = tmp_path / "out"
    files = run(scenario, ALL, out, ranges, order)
    assert digests(out) == digests(reference), label
    assert {f.name for f in files} == set(digests(reference))
    assert (tmp_path / "out.parts").is_dir()  # finalize leaves the parts to its caller


def test_files_parse_with_exact_counts(scenario, reference) -> None:
    lines = (reference / "patients.ndjson").read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [orjson.loads(line) for line in lines[:-1]]
    assert len(records) == N
    assert [r["index"] for r in records] == list(range(N))

    array = json.loads((reference / "patients.json").read_text("utf-8"))
    assert array == records

    with open(reference / "patients.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == csv_format.COLUMNS
    assert len(rows) == N + 1
    assert all(len(row) == len(csv_format.COLUMNS) for row in rows)
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["id"] for r in by_column] == [r["id"] for r in records]
    assert [r["family_name"] for r in by_column] == [r["family_name"] for r in records]
    assert b"\r\n" in (reference / "patients.csv").read_bytes()[:4096]

    bundles = (reference / "fhir-bundles.ndjson").read_bytes().split(b"\n")
    assert bundles[-1] == b"" and len(bundles) == N + 1
    assert all(orjson.loads(line)["type"] == "transaction" for line in bundles[:-1])


def test_manifest_lists_every_file_with_digest(reference, scenario) -> None:
    manifest = orjson.loads((reference / "manifest.json").read_bytes())
    found = digests(reference)
    listed = {f["name"]: f for f in [*manifest["files"], *manifest["internal_files"]]}
    assert set(listed) | {"manifest.json"} == set(found)
    internal = {f["name"] for f in manifest["internal_files"]}
    assert internal == {"patients.ndjson.idx", "patients.attrs", "patients.attrs.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == found[name]
        assert entry["bytes"] == (reference / name).stat().st_size
    assert listed["patients.ndjson"]["records"] == N
    assert listed["patients.csv"]["records"] == N
    assert listed["fhir-bundles.ndjson"]["records"] == N
    assert listed["fhir-bundles.ndjson"]["format"] == "fhir-bundle"
    for name, entry in listed.items():
        if name.startswith("fhir/"):
            text = (reference / name).read_bytes()
            assert entry["records"] == text.count(b"\n")
    assert manifest["seed"] == scenario.seed
    assert manifest["scenario"] == scenario.model_dump(mode="json")
    assert manifest["patients"] == N


def test_index_pages(reference) -> None:
    lines = (reference / "patients.ndjson").read_bytes().split(b"\n")[:-1]
    assert (reference / "patients.ndjson.idx").stat().st_size == 8 * N
    assert bundle.read_patients(reference, 0, 10) == lines[:10]
    assert bundle.read_patients(reference, 55, 20) == lines[55:75]
    assert bundle.read_patients(reference, N - 3, 10) == lines[N - 3 :]
    assert bundle.read_patients(reference, N, 10) == []
    assert bundle.read_patients(reference, 5, 0) == []
    assert bundle.read_patients(reference, 0, N + 50) == lines
    assert list(bundle.iter_index(reference))[1] == len(lines[0]) + 1
    with pytest.raises(ValueError):
        bundle.read_patients(reference, -1, 5)


def test_summary_merge_equals_single_chunk(tmp_path, scenario, reference) -> None:
    parts = tmp_path / "parts"
    single = write_chunk(scenario, ["json"], parts / "a", 0, 0, N)
    pieces = [
        write_chunk(scenario, ["json"], parts / "b", i, a, b)
        for i, (a, b) in enumerate(bundle.chunk_ranges(N, 13))
    ]
    merged = bundle.merge_summaries(pieces)
    assert merged == bundle.merge_summaries([single])
    assert merged == bundle.merge_summaries(list(reversed(pieces)))
    assert merged == bundle.merge_summaries([merged])  # a merged summary merges again
    assert orjson.loads((reference / "summary.json").read_bytes()) == orjson.loads(
        orjson.dumps(merged)
    )
    assert merged["patients"] == N
    assert sum(merged["by_category"].values()) == N
    for triage, outcomes in merged["outcome_by_triage"].items():
        assert sum(outcomes.values()) == merged["by_triage"][triage]
    assert sum(merged["casualties_per_day"]) + merged["casualties_outside_period"] == N
    # chunk summaries are plain JSON with no raw lists of patients
    assert len(orjson.dumps(single)) < 20_000


def test_holcomb_rates_and_percentiles() -> None:
    s = {
        "patients": 0,
        **{name: {} for name in summary._COUNTERS},
        "outcome_by_triage": {"T1": {"KIA": 10}},
        "mass_casualty_patients": 0,
        "battle_injury": {
            "casualties": 100, "kia": 10, "wia": 90, "dow": 4, "rtd": 20, "rtd_within_72h": 15,
        },
        "time_to_outcome_minutes": {"histograms": {"KIA": [10] + [0] * len(summary.TIME_BINS)}},
        "casualties_per_day": [1, 2],
        "casualties_outside_period": 0,
        "facilities": {},
    }  # fmt: skip
    merged = summary.merge_summaries([s])
    battle = merged["battle_injury"]
    assert battle["cfr"] == round(14 / 100, 6)
    # Holcomb's RTD: back to duty within 72 hours (15 here), not every return to duty (20)
    assert battle["pct_kia"] == round(10 / 85, 6)
    assert battle["pct_dow"] == round(4 / 75, 6)
    # ten KIA all in the first bin (0-5 min): the median interpolates to 2.5 min
    assert merged["time_to_outcome_minutes"]["percentiles"]["KIA"]["p50"] == 2.5
    assert merged["time_to_outcome_minutes"]["percentiles"]["DOW"]["p50"] is None
    assert merged["outcome_by_triage"] == {"T1": {"KIA": 10}}


def test_crash_leftover_temp_file_is_not_a_part(tmp_path, scenario, reference) -> None:
    parts = tmp_path / "parts"
    ranges = [(0, 60), (60, N)]
    first = write_chunk(scenario, ALL, parts, 0, *ranges[0])
    # a crashed writer of chunk 1 left a half-written temporary file behind
    (parts / "000001.patients.ndjson.tmp-99999").write_bytes(b'{"half": ')
    with pytest.raises(FileNotFoundError):
        bundle.finalize(scenario, ALL, parts, tmp_path / "out", [first, first])
    second = write_chunk(scenario, ALL, parts, 1, *ranges[1])
    (parts / "000000.patients.json.tmp-99998").write_bytes(b"garbage")
    bundle.finalize(scenario, ALL, parts, tmp_path / "out", [first, second])
    assert digests(tmp_path / "out") == digests(reference)


def test_failed_chunk_leaves_no_part(tmp_path, scenario) -> None:
    source = generate(scenario, 0, 10)

    def failing():
        for i, p in enumerate(source):
            if i == 5:
                raise RuntimeError("worker died")
            yield p

    parts = tmp_path / "parts"
    with pytest.raises(RuntimeError):
        bundle.write_patients(scenario, ALL, parts, 0, failing())
    assert list(parts.iterdir()) == []
    # a source that ends early is a failed chunk too, not a short part
    with pytest.raises(RuntimeError, match="expected 10"):
        bundle.write_patients(scenario, ALL, parts, 0, generate(scenario, 0, 9), expected=10)
    assert list(parts.iterdir()) == []


def test_rewriting_a_chunk_gives_the_same_bytes(tmp_path, scenario) -> None:
    parts = tmp_path / "parts"
    write_chunk(scenario, ALL, parts, 3, 10, 30)
    before = digests(parts)
    write_chunk(scenario, ALL, parts, 3, 10, 30)
    assert digests(parts) == before


def test_finalize_is_idempotent(tmp_path, scenario, reference) -> None:
    out = tmp_path / "out"
    parts = tmp_path / "parts"
    ranges = bundle.chunk_ranges(N, 40)
    summaries = [write_chunk(scenario, ALL, parts, i, a, b) for i, (a, b) in enumerate(ranges)]
    # a crash half-way through an earlier finalize: one file half-joined, one temp file left
    out.mkdir()
    (out / "patients.json").write_bytes(b"[\n{")
    leftover = layout.tmp_path(out / "patients.csv", layout.owner_mark(parts))
    leftover.write_bytes(b"index,")
    first = bundle.finalize(scenario, ALL, parts, out, summaries)
    assert not leftover.exists()
    assert digests(out) == digests(reference)
    assert bundle.finalize(scenario, ALL, parts, out, summaries) == first  # from the parts
    shutil.rmtree(parts)  # what the caller does once the run is recorded as finished
    again = bundle.finalize(scenario, ALL, parts, out, summaries)  # parts are gone now
    assert again == first
    assert digests(out) == digests(reference)
    # a crash after the manifest, with the parts folder only partly removed
    write_chunk(scenario, ALL, parts, 0, *ranges[0])
    assert bundle.finalize(scenario, ALL, parts, out, summaries) == first


def test_a_stalled_finalize_leaves_its_successors_files_alone(
    tmp_path, scenario, reference, monkeypatch
) -> None:
    """A worker paused past its lease (attempt 1) wakes inside finalize while the job's new owner
    (attempt 2) has written its temporary files and not yet renamed them: the stalled one used
    to remove them as leftovers of its own run, and the owner's join failed."""
    parts, out = tmp_path / "parts", tmp_path / "out"
    ranges = bundle.chunk_ranges(N, 40)
    summaries = [write_chunk(scenario, ALL, parts, i, a, b) for i, (a, b) in enumerate(ranges)]
    written, resume = threading.Event(), threading.Event()
    commit = disk.Batch.commit

    def owner_pauses_before_renaming(self, *args, **kwargs):  # the real commit, paused
        if threading.current_thread().name == "owner":
            written.set()
            resume.wait(60)
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(disk.Batch, "commit", owner_pauses_before_renaming)
    joined: dict = {}

    def owner() -> None:
        joined["files"] = bundle.finalize(scenario, ALL, parts, out, summaries, attempt=2)

    thread = threading.Thread(target=owner, name="owner")
    thread.start()
    assert written.wait(60)
    bundle.finalize(scenario, ALL, parts, out, summaries, attempt=1)  # the stalled worker
    resume.set()
    thread.join(60)
    assert "files" in joined  # the owner's join did not fail
    assert digests(out) == digests(reference)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_parts_that_do_not_match_the_summaries_fail(tmp_path, scenario) -> None:
    parts = tmp_path / "parts"
    first = write_chunk(scenario, ALL, parts, 0, 0, 30)
    second = write_chunk(scenario, ALL, parts, 1, 30, 50)
    with pytest.raises(ValueError, match="chunk 1"):
        bundle.finalize(scenario, ALL, parts, tmp_path / "out", [first, first])
    assert not (tmp_path / "out").exists()
    assert len(bundle.finalize(scenario, ALL, parts, tmp_path / "out", [first, second])) > 5


def test_missing_parts_without_finished_output_fail(tmp_path, scenario) -> None:
    with pytest.raises(FileNotFoundError):
        bundle.finalize(scenario, ALL, tmp_path / "nothing", tmp_path / "out", [{}])


def test_finalize_removes_only_what_the_run_wrote(tmp_path, scenario) -> None:
    """An output folder may hold anything: files of other formats or of other runs, a user's own
    files, other writers' temporary files. finalize replaces its own files and removes only the
    leftovers of its own earlier attempts (issue 9, finding 9)."""
    out = tmp_path / "out"
    run(scenario, ALL, out, [(0, N)])
    before = digests(out)
    (out / "patients.json.tmp-4242").write_bytes(b"not mine")
    (out / "fhir" / "Patient.ndjson.tmp-0123456789abcdef-1-2").write_bytes(b"not mine either")
    files = run(scenario, ["csv", "ndjson"], out, [(0, 50), (50, N)])
    names = {f.name for f in files}
    assert names == {
        "patients.csv", "patients.ndjson", "patients.ndjson.idx", "summary.json", "manifest.json",
        "patients.attrs", "patients.attrs.json",
    }  # fmt: skip
    assert {f.format for f in files} == {
        "csv", "ndjson", "index", "attributes", "summary", "manifest",
    }  # fmt: skip
    after = digests(out)
    assert set(after) == set(before) | {
        "patients.json.tmp-4242", "fhir/Patient.ndjson.tmp-0123456789abcdef-1-2",
    }  # fmt: skip
    for name in set(before) - names:  # the other formats' files are untouched
        assert after[name] == before[name], name
    assert after["manifest.json"] != before["manifest.json"]  # the manifest is this run's


def test_write_all_reports_progress(tmp_path, scenario, reference) -> None:
    seen: list[tuple[int, int]] = []
    bundle.write_all(
        scenario, ALL, tmp_path / "out", chunk_size=45, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(0, N), (45, N), (90, N), (N, N)]
    assert digests(tmp_path / "out") == digests(reference)


def test_formats_are_validated() -> None:
    assert bundle.normalize_formats("fhir,json") == ("json", "fhir")
    assert bundle.normalize_formats(["CSV", "csv"]) == ("csv",)
    with pytest.raises(ValueError, match="xml"):
        bundle.normalize_formats("json,xml")
    with pytest.raises(ValueError):
        bundle.normalize_formats([])


def test_csv_quotes_per_rfc4180() -> None:
    encoder = csv_format.CsvEncoder()
    encoder._writer.writerow(["a,b", 'say "hi"', "line\nbreak", None])
    assert encoder.drain() == b'"a,b","say ""hi""","line\nbreak",\r\n'
    assert list(csv.reader(io.StringIO(csv_format.HEADER.decode()))) == [list(csv_format.COLUMNS)]


def test_no_temp_files_left(reference) -> None:
    assert not [p for p in reference.rglob("*") if ".tmp-" in p.name]
    assert os.listdir(reference / "fhir")


def test_bench_smoke(tmp_path) -> None:
    """bench/generation.py runs and prints one line per format measured."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parent.parent / "bench" / "generation.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--sizes", "300", "--formats", "generate,ndjson,chain,phase",
         "--repeats", "1", "--tmp", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows[0].split()[:3] == ["patients", "format", "patients/s"]
    assert [row.split()[1] for row in rows[1:]] == ["generate", "ndjson", "chain", "phase"]
    assert list(tmp_path.iterdir()) == []  # the outputs are cleaned up


# -- issue 9, finding 8: a one-chunk run writes its files once ----------------------------------


@pytest.mark.parametrize(
    "formats", [ALL, ["json"], ["ndjson"], ["csv"], ["fhir"], ["fhir-bundle"], ["hl7"]], ids=str
)
def test_one_chunk_and_chunks_of_two_give_identical_files(tmp_path, scenario, formats) -> None:
    one = bundle.write_all(scenario, formats, tmp_path / "one", chunk_size=1000)
    two = bundle.write_all(scenario, formats, tmp_path / "two", chunk_size=2)
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    assert one == two
    assert {f.name: f.sha256 for f in one} == digests(tmp_path / "one")
    # and the same as one ordinary (not whole) part joined, as before issue 9
    parts = tmp_path / "plain.parts"
    s = write_chunk(scenario, formats, parts, 0, 0, N, whole=False)
    assert bundle.finalize(scenario, formats, parts, tmp_path / "plain", [s]) == one
    assert digests(tmp_path / "plain") == digests(tmp_path / "one")


def test_tiny_one_chunk_runs_match_the_join(tmp_path) -> None:
    for n in (1, 2, 5):
        tiny = Scenario(name="tiny", seed=n, total_patients=n, duration_days=3)
        bundle.write_all(tiny, ALL, tmp_path / f"one-{n}", chunk_size=1000)
        bundle.write_all(tiny, ALL, tmp_path / f"each-{n}", chunk_size=1)
        assert digests(tmp_path / f"one-{n}") == digests(tmp_path / f"each-{n}"), n


def test_one_chunk_without_patients_gives_the_empty_forms(tmp_path, scenario) -> None:
    whole = bundle.write_patients(scenario, ALL, tmp_path / "w", 0, iter([]), whole=True)
    plain = bundle.write_patients(scenario, ALL, tmp_path / "p", 0, iter([]))
    a = bundle.finalize(scenario, ALL, tmp_path / "w", tmp_path / "a", [whole])
    b = bundle.finalize(scenario, ALL, tmp_path / "p", tmp_path / "b", [plain])
    assert a == b and digests(tmp_path / "a") == digests(tmp_path / "b")
    assert (tmp_path / "a" / "patients.json").read_bytes() == b"[]\n"


def whole_files(parts: Path) -> list[Path]:
    """The files of a one-chunk run written whole still in the parts folder."""
    return [p for p in parts.glob(layout.WHOLE_PREFIX + "*")] if parts.is_dir() else []


def test_one_chunk_run_is_written_once(tmp_path, scenario) -> None:
    """finalize of a one-chunk run renames the chunk's files into place: no byte is copied."""
    parts, out = tmp_path / "parts", tmp_path / "out"
    s = write_chunk(scenario, ALL, parts, 0, 0, N)
    inodes = {p.name: p.stat().st_ino for p in parts.iterdir()}
    assert all(name.startswith(layout.WHOLE_PREFIX) for name in inodes)
    assert bundle.missing_chunks(parts, ALL, [0]) == []
    files = bundle.finalize(scenario, ALL, parts, out, [s])
    for f in files:
        flat = layout.WHOLE_PREFIX + f.name.replace("/", ".")
        assert (out / f.name).stat().st_ino == inodes[flat], f.name
    assert not whole_files(parts)  # every file moved into place
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_one_chunk_run_resumes_after_a_crash_anywhere(tmp_path, scenario, reference, monkeypatch):
    parts, out = tmp_path / "parts", tmp_path / "out"
    s = write_chunk(scenario, ALL, parts, 0, 0, N)
    # a crash half-way through the renames, with a temporary file of this run left behind
    real_move = disk.move
    calls = []

    def crashing_move(source, target):
        calls.append(target)
        if len(calls) == 4:
            raise KeyboardInterrupt("crash")
        real_move(source, target)

    monkeypatch.setattr(disk, "move", crashing_move)
    with pytest.raises(KeyboardInterrupt):
        bundle.finalize(scenario, ALL, parts, out, [s])
    monkeypatch.setattr(disk, "move", real_move)
    assert not (out / "manifest.json").exists()
    assert not (parts / "whole.patients.json").exists()  # moved before the crash
    leftover = layout.tmp_path(out / "patients.csv", layout.owner_mark(parts))
    leftover.write_bytes(b"index,")
    first = bundle.finalize(scenario, ALL, parts, out, [s])
    assert digests(out) == digests(reference)
    # a file already moved that is not the run's any more is not taken for it
    write_chunk(scenario, ALL, parts, 0, 0, N)
    (parts / "whole.patients.json").unlink()
    (out / "manifest.json").unlink()
    (out / "patients.json").write_bytes(b"[]\n")
    with pytest.raises(FileNotFoundError):
        bundle.finalize(scenario, ALL, parts, out, [s])
    write_chunk(scenario, ALL, parts, 0, 0, N)
    assert bundle.finalize(scenario, ALL, parts, out, [s]) == first
    assert digests(out) == digests(reference)
    # again after it finished, with the parts folder only partly removed
    write_chunk(scenario, ALL, parts, 0, 0, N)
    (parts / "whole.patients.json").unlink()
    assert bundle.missing_chunks(parts, ALL, [0]) == [0]
    assert bundle.finalize(scenario, ALL, parts, out, [s]) == first
    assert not whole_files(parts)  # every file moved into place
    assert digests(out) == digests(reference)
    # a run that finished once, finalized again from a rewritten chunk: the same files
    write_chunk(scenario, ALL, parts, 0, 0, N)
    assert bundle.finalize(scenario, ALL, parts, out, [s]) == first
    assert digests(out) == digests(reference)


def test_one_chunk_run_copies_where_it_cannot_rename(tmp_path, scenario, reference, monkeypatch):
    import errno

    def elsewhere(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(disk, "move", elsewhere)
    parts, out = tmp_path / "parts", tmp_path / "out"
    s = write_chunk(scenario, ALL, parts, 0, 0, N)
    files = bundle.finalize(scenario, ALL, parts, out, [s])
    assert digests(out) == digests(reference)
    assert {f.name: f.sha256 for f in files} == digests(reference)
    assert whole_files(parts)  # copied, not moved: the caller removes the parts


def test_one_chunk_parts_that_do_not_match_the_summary_fail(tmp_path, scenario) -> None:
    parts = tmp_path / "parts"
    s = write_chunk(scenario, ALL, parts, 0, 0, N)
    wrong = {**s, "patients": N + 1}
    with pytest.raises(ValueError, match="chunk 0"):
        bundle.finalize(scenario, ALL, parts, tmp_path / "out", [wrong])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="whole"):
        write_chunk(scenario, ALL, parts, 1, 0, N, whole=True)
