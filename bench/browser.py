"""Time to the first page of the casualty browser for a 100,000-patient job (goal: under 1 s).

    .venv/bin/python bench/browser.py                 # 100,000 patients, 5 runs
    .venv/bin/python bench/browser.py --patients 20000 --runs 3

Generates one job with NDJSON output (`patientgen generate`, in a temporary data folder), then
for each run starts a fresh `patientgen serve --workers 0 --auth off` on it (so the casualty
index is opened cold, as after a restart) and times over HTTP what the page asks for:

- facets: GET /jobs/{id}/patients/facets (the filter menus; opens the index)
- first page: GET /jobs/{id}/patients?limit=50 (file order)
- filtered: ?triage=T1&category=battle_injury&sort=-injured_at&limit=50 (first time: the sort
  order is computed) and then a filtered page in file order (?outcome=KIA&front=...)
- lookup: GET /jobs/{id}/patients/{id} of the last patient
- "browser first page" = facets + first page, what the page waits for before it shows rows

Each figure is the median over the runs (cold: the first request of its kind after the start)
and, for warm figures, the median of 20 repeats in each run. Prints milliseconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]
WARM_REPEATS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env["PATIENTGEN_DATA_DIR"] = str(data_dir)
    return env


def generate(data_dir: Path, patients: int) -> str:
    """One completed job of `patients` with NDJSON output; its id."""
    started = time.perf_counter()
    subprocess.run(
        [*CLI, "generate", "--preset", "high-intensity-defence", "--patients", str(patients),
         "--seed", "1", "--format", "ndjson"],
        env=environment(data_dir), cwd=data_dir, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    (job_dir,) = [d for d in (data_dir / "jobs").iterdir() if (d / "patients.ndjson").is_file()]
    print(f"generated {patients:,} patients in {time.perf_counter() - started:.1f} s")
    return job_dir.name


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "0", "--auth", "off",
         "--log-level", "warning"],
        env=environment(data_dir), cwd=data_dir,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the service did not start")


def timed(
    http: httpx.Client, path: str, params: dict | None = None
) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = http.get(path, params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response


def one_run(url: str, job_id: str) -> dict[str, float]:
    base = f"/api/v1/jobs/{job_id}/patients"
    figures: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        figures["facets (cold)"], facets = timed(http, f"{base}/facets")
        figures["first page (cold)"], first = timed(http, base, {"limit": 50})
        figures["browser first page (cold)"] = (
            figures["facets (cold)"] + figures["first page (cold)"]
        )
        sorted_filter = {"triage": "T1", "category": "battle_injury", "sort": "-injured_at",
                         "limit": 50}  # fmt: skip
        figures["filtered + sorted page (cold)"], _ = timed(http, base, sorted_filter)
        front = orjson.loads(facets.content)["facets"]["front"][0]["value"]
        plain_filter = {"outcome": "KIA", "front": front, "limit": 50}
        figures["filtered page (cold)"], _ = timed(http, base, plain_filter)
        total = orjson.loads(first.content)["total"]
        last = orjson.loads(http.get(base, params={"offset": total - 1, "limit": 1}).content)
        patient_id = last["items"][0]["id"]
        figures["lookup by id (cold)"], _ = timed(http, f"{base}/{patient_id}")
        warm: dict[str, tuple[str, dict[str, Any] | None]] = {
            "first page (warm)": (base, {"limit": 50}),
            "filtered + sorted page (warm)": (base, sorted_filter),
            "filtered page (warm)": (base, plain_filter),
            "facets (warm)": (f"{base}/facets", None),
            "lookup by id (warm)": (f"{base}/{patient_id}", None),
        }
        for name, (path, params) in warm.items():
            figures[name] = statistics.median(
                timed(http, path, params)[0] for _ in range(WARM_REPEATS)
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patientgen-bench-browser-") as tmp:
        data_dir = Path(tmp)
        job_id = generate(data_dir, args.patients)
        runs: list[dict[str, float]] = []
        for _ in range(args.runs):
            proc, url = start_server(data_dir)
            try:
                runs.append(one_run(url, job_id))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(f"casualty browser, {args.patients:,} patients, median of {args.runs} runs (ms):")
    for name in runs[0]:
        values = [run[name] * 1000 for run in runs]
        print(f"  {name:<32} {statistics.median(values):8.1f}   (max {max(values):.1f})")
    slowest = statistics.median(run["browser first page (cold)"] for run in runs)
    print(f"goal: browser first page under 1 s: {'met' if slowest < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
