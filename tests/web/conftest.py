"""Fixtures of the browser tests: the real `patientgen serve` (SQLite, one embedded worker) in a
subprocess on a free port, and Debian's Chromium driven by Playwright.

Chromium comes from Debian (`scripts/ensure-browser.sh` installs it); Playwright's own browser
downloads are never used. Screenshots go to test-artifacts/screenshots/ (or
$PATIENTGEN_SCREENSHOTS); the path is printed at the end of the run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
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

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        return httpx.Client(base_url=self.url + "api/v1", headers=headers, timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=self.env, cwd=self.data_dir, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--auth", self.auth, "--log-level", "warning"],
            env=self.env, cwd=self.data_dir, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def make_service(tmp: Path, auth: str) -> Service:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        {
            "PATIENTGEN_DATA_DIR": str(data_dir),
            "PATIENTGEN_DATABASE_URL": f"sqlite:///{data_dir / 'patientgen.db'}",
            "PATIENTGEN_POLL_INTERVAL": "0.1",
            "PATIENTGEN_CHUNK_SIZE": "500",
            "PYTHONUNBUFFERED": "1",
        }
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
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that requires API keys even on loopback, with one key made by the CLI."""
    svc = make_service(tmp_path_factory.mktemp("web-keyed"), "required")
    svc.start()
    result = svc.cli("keys", "create", "web-test")
    assert result.returncode == 0, result.stderr
    svc.key = result.stdout.strip().splitlines()[-1]
    try:
        yield svc
    finally:
        svc.stop()


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
    """A fresh page at 1280 px; uncaught page errors fail the test. A failed test leaves a
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


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"web page screenshots: {SCREENSHOTS}")
