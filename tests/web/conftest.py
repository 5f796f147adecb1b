"""Fixtures of the browser tests: the real `patientgen serve` (SQLite, one embedded worker) in a
subprocess on a free port, and Debian's Chromium driven by Playwright.

Chromium comes from Debian (`scripts/ensure-browser.sh` installs it); Playwright's own browser
downloads are never used. Screenshots go to test-artifacts/screenshots/ (or
$PATIENTGEN_SCREENSHOTS); the path is printed at the end of the run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import CLI, ServeProcess, free_port, key_from, running, service_env

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PATIENTGEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("PATIENTGEN_SCREENSHOTS", REPO / "test-artifacts" / "screenshots")
).resolve()


@dataclass
class Service(ServeProcess):
    """A running `patientgen serve` for the page to talk to."""

    env: dict[str, str]
    data_dir: Path
    port: int
    auth: str
    log: Path
    proc: subprocess.Popen | None = None
    key: str | None = None
    external: str | None = None  # base URL of a service started elsewhere

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}/"

    @property
    def health_url(self) -> str:
        return self.url + "healthz"

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.url + "api/v1", headers=headers, timeout=30)

    def serve_argv(self) -> list[str]:
        return [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--auth", self.auth, "--log-level", "warning"]  # fmt: skip

    def stop(self) -> None:
        self.stop_serve()


def make_service(tmp: Path, auth: str) -> Service:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(
        data_dir,
        f"sqlite:///{data_dir / 'patientgen.db'}",
        PATIENTGEN_POLL_INTERVAL="0.1",
        PATIENTGEN_CHUNK_SIZE="500",
    )
    return Service(env=env, data_dir=data_dir, port=free_port(), auth=auth, log=tmp / "serve.log")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service without keys (loopback, --auth off), shared by the tests of the page.
    PATIENTGEN_WEB_TEST_URL points the tests at a service that already runs instead."""
    svc = make_service(tmp_path_factory.mktemp("web-service"), "off")
    external = os.environ.get("PATIENTGEN_WEB_TEST_URL")
    if external:
        svc.external = external.rstrip("/") + "/"
        yield svc
        return
    with running(svc):
        svc.start()
        yield svc


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that requires API keys even on loopback, with one key made by the CLI."""
    svc = make_service(tmp_path_factory.mktemp("web-keyed"), "required")
    with running(svc):
        svc.start()
        svc.key = key_from(svc.cli("keys", "create", "web-test"))
        yield svc


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure-browser.sh (as root it installs Debian's "
            "chromium package)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page at 1280 px; uncaught page errors and anything the page's Content-Security-
    Policy refuses fail the test. A failed test leaves a
    screenshot (failed-<test>.png) and the page's console next to the other screenshots."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)  # type: ignore[attr-defined]
    pg = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    pg.set_default_timeout(20_000)
    try:
        yield pg
        if request.node.stash.get(_FAILED, False):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = request.node.name
            pg.screenshot(path=str(SCREENSHOTS / f"failed-{name}.png"), full_page=True)
            logs = [
                f"--- {arg}: {svc.log}\n" + svc.log.read_text(errors="replace")[-5000:]
                for arg, svc in request.node.funcargs.items()
                if isinstance(svc, Service) and svc.log.exists()
            ]
            (SCREENSHOTS / f"failed-{name}.txt").write_text("\n".join([*console, *logs]))
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    refused = [line for line in console if "Content Security Policy" in line]
    assert not refused, f"the page breaks its Content-Security-Policy: {refused}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"web page screenshots: {SCREENSHOTS}")
