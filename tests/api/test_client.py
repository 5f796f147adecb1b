"""patientgen.client.Client against the real service."""

from __future__ import annotations

import hashlib
import uuid
import zipfile

import orjson
import pytest

from patientgen.client import (
    ApiError,
    Client,
    Conflict,
    ConnectionFailed,
    NotFound,
    PreconditionFailed,
    Preset,
    Unauthorized,
    ValidationFailed,
)
from patientgen.scenario import Scenario
from tests.api.conftest import Service
from tests.support import free_port

pytestmark = pytest.mark.slow


def test_client_round_trip(live_sqlite: Service, tmp_path) -> None:
    seen: list[tuple[str, int]] = []
    with Client(live_sqlite.url, api_key=live_sqlite.keys["alice"]) as client:
        job = client.submit(
            Scenario(name="client", seed=5, total_patients=1200), formats=["ndjson", "csv"]
        )
        assert job.status == "pending" and job.seed == 5
        done = client.wait(job.job_id, progress=lambda j: seen.append((j.status, j.progress)))
        assert done.status == "completed" and done.progress == 100
        assert seen and seen[-1] == ("completed", 100)
        assert client.get(job.job_id).completed_at is not None
        assert job.job_id in [j.job_id for j in client.list().items]
        assert job.job_id in [j.job_id for j in client.iter_jobs(status="completed")]

        written = client.download(job.job_id, tmp_path / "all")
        names = {p.relative_to(tmp_path / "all").as_posix() for p in written}
        # every output, and no internal index: the API lists none (issue 12 defect 3)
        assert names == {f.name for f in done.output_files}
        assert {f.format for f in done.output_files} == {"ndjson", "csv", "summary", "manifest"}
        assert not (tmp_path / "all" / "patients.ndjson.idx").exists()
        for item in done.output_files:
            data = (tmp_path / "all" / item.name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == item.sha256
        one = client.download(job.job_id, tmp_path / "one.csv", name="patients.csv")
        assert one[0].read_bytes() == (tmp_path / "all" / "patients.csv").read_bytes()
        whole = client.summary(job.job_id)  # summary.json, as the job's summary has no plan here
        assert whole == orjson.loads((tmp_path / "all" / "summary.json").read_bytes())
        assert whole == client.get(job.job_id).summary

        page = client.patients(job.job_id, offset=10, limit=5)
        assert page.total == 1200 and len(page.items) == 5 and page.next_offset == 15

        # the casualty browser's calls: filters, sort, facets, one casualty by id
        records = [orjson.loads(line) for line in (tmp_path / "all" / "patients.ndjson").open("rb")]
        facets = client.patient_facets(job.job_id)
        assert facets.total == 1200 and "injured_at" in facets.sort_keys
        assert sum(f.count for f in facets.facets["triage"]) == 1200
        t1_t2 = [r for r in records if r["triage"] in ("T1", "T2") and r["category"] == "disease"]
        found = client.patients(
            job.job_id, limit=1000, triage=["T1", "T2"], category="disease", sort="-index"
        )
        assert found.total == len(t1_t2) and found.sort == "-index"
        assert [r["id"] for r in found.items] == [r["id"] for r in t1_t2[::-1]]
        assert client.patient(job.job_id, records[345]["id"]) == records[345]
        with pytest.raises(NotFound):
            client.patient(job.job_id, uuid.uuid4())
        with pytest.raises(ValidationFailed) as bad:
            client.patients(job.job_id, triage="T7", sort="age")
        assert {e["field"] for e in bad.value.errors} == {"triage", "sort"}

        archive = client.archive(job.job_id, tmp_path / "all.zip")
        with zipfile.ZipFile(archive) as zf:
            assert set(zf.namelist()) == names  # no internal index in the ZIP either

        again = client.submit(preset="training-exercise", formats=["csv"], idempotency_key="c1")
        same = client.submit(preset="training-exercise", formats=["csv"], idempotency_key="c1")
        assert again.job_id == same.job_id
        with pytest.raises(Conflict) as conflict:
            client.submit(preset="training-exercise", formats=["json"], idempotency_key="c1")
        assert conflict.value.type.endswith("/idempotency-conflict")

        client.cancel(again.job_id)
        final = client.wait(again.job_id, timeout=30)
        assert final.status in ("cancelled", "completed")
        if final.status == "cancelled":
            assert client.retry(again.job_id).status == "pending"
            client.cancel(again.job_id)
            client.wait(again.job_id, timeout=30)
        client.delete(again.job_id)
        with pytest.raises(NotFound):
            client.get(again.job_id)

        resolved = client.validate(preset="peacekeeping", overrides={"total_patients": 9})
        assert resolved["total_patients"] == 9
        presets = client.presets()
        assert presets and all(isinstance(p, Preset) for p in presets)
        peacekeeping = next(p for p in presets if p.name == "peacekeeping")
        assert peacekeeping.description and peacekeeping.scenario["total_patients"] > 0


def test_a_refused_connection_raises_the_clients_own_error(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Client(url, timeout=5) as client:
        for call in (
            client.presets,
            lambda: client.get(uuid.uuid4()),
            lambda: client.download(uuid.uuid4(), tmp_path, name="patients.csv"),
            lambda: list(client.events(uuid.uuid4())),
        ):
            with pytest.raises(ConnectionFailed) as refused:
                call()
            assert isinstance(refused.value, ApiError) and refused.value.status == 0
            assert url in str(refused.value) and "cannot reach" in str(refused.value).lower()


def test_client_errors_carry_problem_details(live_sqlite: Service) -> None:
    with Client(live_sqlite.url, api_key=live_sqlite.keys["alice"]) as client:
        with pytest.raises(ValidationFailed) as invalid:
            client.submit({"total_patients": 0, "tempo": "nope"})
        fields = {e["field"] for e in invalid.value.errors}
        assert {"body.scenario.total_patients", "body.scenario.tempo"} <= fields
        assert invalid.value.status == 422 and invalid.value.detail
        with pytest.raises(NotFound):
            client.get(uuid.uuid4())
        with pytest.raises(ApiError) as missing:
            client.wait(uuid.uuid4())
        assert missing.value.status == 404
    with Client(live_sqlite.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.list()


def test_client_saved_scenarios(live_sqlite: Service) -> None:
    with Client(live_sqlite.url, api_key=live_sqlite.keys["bob"]) as client:
        saved = client.save_scenario("Exercise Northern Shield", Scenario(total_patients=9, seed=2))
        assert saved.version == 1 and saved.scenario and saved.scenario["total_patients"] == 9
        again = client.save_scenario(
            "Exercise Northern Shield", preset="peacekeeping", overrides={"total_patients": 11}
        )
        assert again.version == 2 and again.scenario and again.scenario["total_patients"] == 11
        assert [s.name for s in client.saved_scenarios()] == ["Exercise Northern Shield"]
        assert client.saved_scenario("Exercise Northern Shield").scenario == again.scenario
        with pytest.raises(ValidationFailed):
            client.save_scenario("Exercise Northern Shield", {"total_patients": -5})
        # conditional saves: a new name only, or only the version read
        with pytest.raises(PreconditionFailed) as taken:
            client.save_scenario("Exercise Northern Shield", {"total_patients": 4}, only_new=True)
        assert taken.value.status == 412 and taken.value.problem["current_version"] == 2
        with pytest.raises(PreconditionFailed):
            client.save_scenario("Exercise Northern Shield", {"total_patients": 4}, if_version=1)
        third = client.save_scenario(
            "Exercise Northern Shield", {"total_patients": 4}, if_version=2
        )
        assert third.version == 3
        assert client.saved_scenario("Exercise Northern Shield").scenario == third.scenario
        client.delete_scenario("Exercise Northern Shield")
        with pytest.raises(NotFound):
            client.saved_scenario("Exercise Northern Shield")
        assert client.saved_scenarios() == []
