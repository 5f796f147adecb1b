"""Security headers and the exposure of /metrics, on the real service.

Every response says `X-Content-Type-Options: nosniff`; the web page (HTML) also carries a strict
Content-Security-Policy, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`; the API docs
carry a policy of their own. /metrics needs a valid key where keys are required, unless
PATIENTGEN_METRICS_PUBLIC=true.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import Service, api_only_with

PAGE_CSP = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def public_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from api_only_with(tmp_path_factory, "metrics-public", metrics_public="true")


def test_the_page_has_a_strict_policy(api_only: Service) -> None:
    for path in ("/", "/index.html"):
        page = httpx.get(api_only.url + path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
    # the page's own files need nothing inline: no inline script, style or event handler
    html = httpx.get(api_only.url + "/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:|data:", html)
    for asset in ("/app.js", "/app.css", "/favicon.svg"):
        got = httpx.get(api_only.url + asset)
        assert got.status_code == 200, asset
        assert got.headers["x-content-type-options"] == "nosniff"


def test_api_answers_say_nosniff(api_only: Service) -> None:
    with api_only.client("alice") as http:
        ok = http.get("/presets")
        missing = http.get("/jobs/00000000-0000-0000-0000-000000000000")
    assert ok.headers["content-type"] == "application/json"
    assert missing.headers["content-type"] == PROBLEM
    for got in (ok, missing):
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in got.headers  # JSON is no document to police


def test_the_docs_have_a_policy_that_lets_them_start(api_only: Service) -> None:
    docs = httpx.get(api_only.api + "/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"
    assert docs.headers["x-content-type-options"] == "nosniff"
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    # the one inline script that starts Swagger UI is allowed by its hash; nothing comes from
    # another origin (the docs work on a closed network)
    for body in re.findall(r"<script>(.*?)</script>", docs.text, flags=re.S):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in directives["script-src"]
    assert "https:" not in csp and "http:" not in csp
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(url.startswith("/api/v1/docs/assets/") for url in assets), assets
    for url in assets:
        got = httpx.get(api_only.url + url)
        assert got.status_code == 200 and len(got.content) > 1000, url


def test_metrics_need_a_key_where_keys_are_required(api_only: Service) -> None:
    for path in ("/metrics", "/api/v1/metrics"):
        refused = httpx.get(api_only.url + path)
        assert refused.status_code == 401, refused.text[:200]
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "/api/v1/problems/unauthorized"
        wrong = httpx.get(api_only.url + path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        allowed = httpx.get(
            api_only.url + path, headers={"Authorization": f"Bearer {api_only.keys['bob']}"}
        )
        assert allowed.status_code == 200
        assert "patientgen_jobs{" in allowed.text


def test_metrics_can_be_public(public_metrics: Service) -> None:
    assert public_metrics.auth == "required"
    got = httpx.get(public_metrics.url + "/metrics")
    assert got.status_code == 200 and "patientgen_jobs{" in got.text
