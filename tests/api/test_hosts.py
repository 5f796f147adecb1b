"""The Host allow-list (DNS rebinding): the real service answers only for the hosts it is meant to.

A page on evil.example whose name an attacker re-points at 127.0.0.1 makes the browser send
`Host: evil.example` to the local service; that request gets 400 `host-not-allowed` and never
reaches a route (no job is made). The loopback names, with any port, are allowed by default;
PATIENTGEN_ALLOWED_HOSTS replaces the list (`*` allows any host).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import Service, api_only_with

PROBLEM = "application/problem+json"
TINY_JOB = {"preset": "urban-assault", "overrides": {"total_patients": 3}}


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose allow-list names evil.example (and loopback, for the fixture's probes)."""
    yield from api_only_with(
        tmp_path_factory, "hosts-listed", allowed_hosts="127.0.0.1, Evil.Example"
    )


@pytest.fixture(scope="module")
def anything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from api_only_with(tmp_path_factory, "hosts-any", allowed_hosts="*")


def _job_count(svc: Service) -> int:
    with svc.client("root") as http:
        return len(http.get("/jobs", params={"limit": 200}).json()["items"])


def test_a_foreign_host_is_refused_before_any_route(api_only: Service) -> None:
    before = _job_count(api_only)
    with api_only.client("alice") as http:
        for method, path in (("GET", "/presets"), ("POST", "/jobs")):
            got = http.request(
                method,
                path,
                json=TINY_JOB if method == "POST" else None,
                headers={"Host": "evil.example"},
            )
            assert got.status_code == 400, (path, got.text)
            assert got.headers["content-type"] == PROBLEM
            problem = got.json()
            assert problem["type"] == "/api/v1/problems/host-not-allowed"
            assert problem["status"] == 400 and "evil.example" in problem["detail"]
        assert http.get("/healthz", headers={"Host": "evil.example:80"}).status_code == 400
        page = httpx.get(api_only.url + "/", headers={"Host": "evil.example"})
        assert page.status_code == 400
    assert _job_count(api_only) == before  # the POST never reached the route
    assert httpx.get(api_only.url + "/api/v1/problems/host-not-allowed").status_code == 200


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LOCALHOST", "[::1]:{port}"]
)
def test_loopback_names_with_any_port_are_allowed(api_only: Service, host: str) -> None:
    with api_only.client("alice") as http:
        got = http.get("/presets", headers={"Host": host.format(port=api_only.port)})
    assert got.status_code == 200, got.text


@pytest.mark.parametrize("host", ["127.0.0.1.evil.example", "evil.example:notaport", ""])
def test_lookalikes_and_empty_hosts_are_refused(api_only: Service, host: str) -> None:
    with api_only.client("alice") as http:
        got = http.get("/presets", headers={"Host": host})
    assert got.status_code == 400, got.text


def test_a_listed_host_is_answered(listed: Service) -> None:
    with listed.client("alice") as http:
        got = http.get("/presets", headers={"Host": f"evil.example:{listed.port}"})
        assert got.status_code == 200, got.text
        assert http.get("/presets", headers={"Host": "other.example"}).status_code == 400
        # the list replaces the default: localhost is not in it
        assert http.get("/presets", headers={"Host": "localhost"}).status_code == 400


def test_a_star_allows_any_host(anything: Service) -> None:
    with anything.client("alice") as http:
        assert http.get("/presets", headers={"Host": "evil.example"}).status_code == 200


def test_the_problem_type_is_described(api_only: Service) -> None:
    described = httpx.get(api_only.api + "/problems/host-not-allowed").json()
    assert described["title"] == "Host not allowed"
