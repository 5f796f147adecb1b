"""Time to the first replay frame's data for a 100,000-patient job (goal: under 1 s).

    .venv/bin/python bench/replay.py                  # 100,000 patients, 5 runs
    .venv/bin/python bench/replay.py --patients 20000 --runs 3

Generates one job with NDJSON output (`patientgen generate`, in a temporary data folder), then
for each run starts a fresh `patientgen serve --workers 0 --auth off` on it (so the casualty
index is opened cold, as after a restart) and times over HTTP the calls the replay makes
before it draws its first frame (patientgen/web/replay.js), in the same order:

- open: GET /patients/facets and GET /patients/tracks?limit=1 (filter menus and time span;
  the page sends them together)
- seek to the start: GET /patients/counters?at=T, the casualties active at T
  (tracks?injured_before=T&outcome_after=T, every page) and the first page ahead
  (tracks?injured_after=T&limit=2000)
- "first frame" = open + seek to the start
- a seek to the middle of the exercise (the same three calls at the middle of the span): what a
  seek costs once the index is open
- playing on: the next page ahead (offset 2000)

Each figure is the median over the runs (each run's calls are cold: the first after the start).
Prints milliseconds.

`--frames` then plays the replay in Debian's Chromium (headless, through Playwright, as the
browser tests do) from the start at 100× for 8 s (the whole of a 30-day job) and prints the
frame intervals (median, p95, worst) and the most casualties on the picture at once: is it
smooth with this many?

    .venv/bin/python bench/replay.py --patients 20000 --runs 1 --frames
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from browser import generate, start_server  # bench/browser.py

PAGE = 2000
SPEED = 100  # × one exercise hour per second: a 30-day job in about 8 s


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _get(http: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    response = http.get(path, params=params)
    response.raise_for_status()
    return orjson.loads(response.content)


def _seek(http: httpx.Client, base: str, at: int) -> tuple[float, int]:
    """The three calls of a seek (sequential: the page sends them together, so this is an
    upper bound); (seconds, casualties active)."""
    started = time.perf_counter()
    t = _iso(at)
    _get(http, f"{base}/counters", {"at": t})
    active = 0
    offset: int | None = 0
    while offset is not None:
        page = _get(http, f"{base}/tracks", {"injured_before": t, "outcome_after": t,
                                             "offset": offset, "limit": 5000})  # fmt: skip
        active += len(page["items"])
        offset = page["next_offset"]
    _get(http, f"{base}/tracks", {"injured_after": t, "limit": PAGE})
    return time.perf_counter() - started, active


def one_run(url: str, job_id: str) -> dict[str, float]:
    base = f"/api/v1/jobs/{job_id}/patients"
    figures: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        _get(http, f"{base}/facets", {})
        first = _get(http, f"{base}/tracks", {"limit": 1})
        figures["open: facets + span (cold)"] = time.perf_counter() - started
        span = first["span"]
        figures["seek to the start"], _ = _seek(http, base, span["start"])
        figures["first frame (open + seek)"] = (
            figures["open: facets + span (cold)"] + figures["seek to the start"]
        )
        middle = (span["start"] + span["end"]) // 2
        figures["seek to the middle"], active = _seek(http, base, middle)
        figures["active"] = active
        started = time.perf_counter()
        _get(http, f"{base}/tracks", {"injured_after": _iso(span["start"]), "offset": PAGE,
                                      "limit": PAGE})  # fmt: skip
        figures["next page ahead (2,000 tracks)"] = time.perf_counter() - started
    return figures


FRAMES_JS = """async ([seconds]) => {
  const times = [];
  let most = 0;
  const stop = performance.now() + seconds * 1000;
  await new Promise((done) => {
    const tick = (now) => {
      times.push(now);
      const cell = document.querySelector('#replay-counters tbody');
      if (cell) most = Math.max(most, [...cell.querySelectorAll('td[data-kind=here]')]
        .reduce((n, td) => n + Number(td.textContent.replace(/,/g, '')), 0));
      if (now < stop) requestAnimationFrame(tick); else done();
    };
    requestAnimationFrame(tick);
  });
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  return { gaps, most };
}"""


def frames(url: str, job_id: str, seconds: float = 8) -> None:
    """Frame intervals of the replay playing at SPEED× in Chromium."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PATIENTGEN_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/#/jobs/{job_id}")
        page.wait_for_function(
            "() => document.querySelector('#replay')?.dataset.state === 'paused'"
            " && !document.querySelector('#replay[aria-busy]')",
            timeout=60_000,
        )
        page.select_option("#replay-speed", str(SPEED))
        page.click("#replay-play")
        result = page.evaluate(FRAMES_JS, [seconds])
        browser.close()
    gaps = result["gaps"]
    p95 = gaps[int(len(gaps) * 0.95)]
    print(f"replay in Chromium at {SPEED}× for {seconds:.0f} s: {len(gaps)} frames, interval "
          f"median {statistics.median(gaps):.1f} ms, p95 {p95:.1f} ms, worst {gaps[-1]:.1f} ms; "
          f"most casualties on the picture at once: {result['most']:,}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", action="store_true", help="also time frames in Chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patientgen-bench-replay-") as tmp:
        data_dir = Path(tmp)
        job_id = generate(data_dir, args.patients)
        runs: list[dict[str, float]] = []
        for turn in range(args.runs):
            proc, url = start_server(data_dir)
            try:
                runs.append(one_run(url, job_id))
                if args.frames and turn == args.runs - 1:
                    frames(url, job_id)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"replay, {args.patients:,} patients, median of {args.runs} runs (ms):")
    active = int(runs[0].pop("active"))
    for run in runs[1:]:
        run.pop("active")
    for name in runs[0]:
        values = [run[name] * 1000 for run in runs]
        print(f"  {name:<36} {statistics.median(values):8.1f}   (max {max(values):.1f})")
    print(f"  (casualties active at the middle: {active:,})")
    first = statistics.median(run["first frame (open + seek)"] for run in runs)
    print(f"goal: first replay frame under 1 s: {'met' if first < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
