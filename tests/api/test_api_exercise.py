"""The exercise package through the real service (issue 11, item 5): asked for as formats `mel`
and `cards`, written by the service's worker, downloaded over HTTP with their content types, and
byte-identical to the same job written in this process in another chunking; cards for too many
patients are refused at submit with a 422 that lists every problem."""

from __future__ import annotations

import csv
import io

import pypdfium2
import pytest

from patientgen.client import ApiError, Client
from patientgen.formats import bundle
from patientgen.scenario import Scenario
from tests.api.conftest import Service

PATIENTS = 40


def test_inject_list_and_cards_downloaded(live_sqlite: Service, tmp_path) -> None:
    with Client(live_sqlite.url, api_key=live_sqlite.keys["alice"]) as client:
        job = client.submit(
            preset="mass-casualty-drill",
            overrides={"total_patients": PATIENTS, "seed": 11},
            formats=["mel", "cards"],
        )
        assert job.config["formats"] == ["mel", "cards"]
        job = client.wait(job.job_id, timeout=120)
        assert job.status == "completed", job.error
        files = {f.name: f for f in client.files(job.job_id)}
        assert set(files) == {"mel.csv", "cards.pdf", "summary.json", "manifest.json"}
        assert files["cards.pdf"].format == "cards" and files["cards.pdf"].records == PATIENTS
        assert files["mel.csv"].format == "mel" and files["mel.csv"].records > PATIENTS
        written = client.download(job.job_id, tmp_path / "downloaded")
        assert {p.name for p in written} == set(files)

    with live_sqlite.client("alice") as http:
        csv_response = http.get(f"/jobs/{job.job_id}/files/mel.csv")
        assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
        pdf_response = http.get(f"/jobs/{job.job_id}/files/cards.pdf")
        assert pdf_response.headers["content-type"] == "application/pdf"
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8"))))
    assert len(rows) == files["mel.csv"].records + 1
    pdf = pypdfium2.PdfDocument(pdf_response.content)
    try:
        assert len(pdf) == PATIENTS
    finally:
        pdf.close()

    # the same scenario written here in chunks of 3: the same bytes
    scenario = Scenario.model_validate(job.config["scenario"])
    local = bundle.write_all(scenario, ["mel", "cards"], tmp_path / "local", chunk_size=3)
    assert {f.name: f.sha256 for f in local} == {name: f.sha256 for name, f in files.items()}
    assert (tmp_path / "local" / "cards.pdf").read_bytes() == pdf_response.content


def test_cards_for_too_many_patients_are_refused(live_sqlite: Service) -> None:
    with live_sqlite.client("alice") as http:
        before = len(http.get("/jobs", params={"limit": 200}).json()["items"])
        response = http.post(
            "/jobs",
            json={
                "preset": "peacekeeping",
                "overrides": {"total_patients": 20_001},
                "formats": ["csv", "cards", "cards"],
            },
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        messages = [e["message"] for e in problem["errors"]]
        assert [e["field"] for e in problem["errors"]] == ["body.formats", "body.formats"]
        assert "each format at most once" in messages
        assert any("20,000" in m and "20,001" in m for m in messages)
        assert "20,000" in problem["detail"]
        # at the limit it is accepted (the job is not waited for)
        fine = http.post(
            "/jobs",
            json={"preset": "peacekeeping", "overrides": {"total_patients": 20_000},
                  "formats": ["mel", "cards"]},
        )  # fmt: skip
        assert fine.status_code == 202, fine.text
        http.post(f"/jobs/{fine.json()['job_id']}/cancel")
        after = len(http.get("/jobs", params={"limit": 200}).json()["items"])
        assert after == before + 1  # the refused one was never created

    with Client(live_sqlite.url, api_key=live_sqlite.keys["alice"]) as client:
        with pytest.raises(ApiError) as refused:
            client.submit(preset="urban-assault", overrides={"total_patients": 25_000},
                          formats=["cards"])  # fmt: skip
        assert refused.value.status == 422
