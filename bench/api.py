"""API throughput: requests/s and p50/p99 latency of submits and of GET /jobs/{id}, 50 clients.

    .venv/bin/python bench/api.py                        # starts its own `patientgen serve`
    .venv/bin/python bench/api.py --database-url postgresql://...   # on PostgreSQL
    .venv/bin/python bench/api.py --url http://127.0.0.1:8000 --api-key KEY   # a running one

By default it starts `patientgen serve --workers 0 --auth required` (an API-only node, so the
figures are the API's and the store's, not the generator's; every request carries an API key) on
SQLite in a temporary folder, and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, database_url: str | None) -> tuple[subprocess.Popen, str, str]:
    """`patientgen serve --workers 0 --auth required` and a fresh API key for it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env["PATIENTGEN_DATA_DIR"] = str(data_dir)
    if database_url:
        env["PATIENTGEN_DATABASE_URL"] = database_url
    made = subprocess.run(
        [*CLI, "keys", "create", "bench"], env=env, cwd=data_dir, capture_output=True, text=True
    )
    if made.returncode != 0:
        raise SystemExit(f"cannot create an API key: {made.stderr.strip()}")
    key = made.stdout.strip().splitlines()[-1]
    command = [*CLI, "serve", "--port", str(port), "--workers", "0", "--auth", "required"]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env=env,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url, key
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the service did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, latencies: list[float], errors: int, elapsed: float) -> None:
    ms = [x * 1000 for x in latencies]
    print(
        f"{name:<22} {len(ms):>7} requests  {len(ms) / elapsed:>8.0f} req/s  "
        f"p50 {statistics.median(ms):6.1f} ms  p99 {percentile(ms, 0.99):6.1f} ms  "
        f"errors {errors}"
    )


async def run_phase(
    name: str, clients: int, per_client: int, make_request, base: str, headers: dict[str, str]
) -> list[str]:
    latencies: list[float] = []
    errors = 0
    results: list[str] = []
    # One AsyncClient (one keep-alive connection) per simulated client: a single shared client
    # with 50 connections spends more CPU in its pool than the server spends answering.
    sessions = [
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60) for _ in range(clients)
    ]

    async def worker(index: int) -> None:
        nonlocal errors
        http = sessions[index]
        for i in range(per_client):
            start = time.perf_counter()
            response = await make_request(http, index, i)
            latencies.append(time.perf_counter() - start)
            if response.status_code >= 400:
                errors += 1
            elif response.headers.get("content-type", "").startswith("application/json"):
                job_id = response.json().get("job_id")
                if job_id:
                    results.append(job_id)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    finally:
        for session in sessions:
            await session.aclose()
    report(name, latencies, errors, elapsed)
    return results


async def main_async(args: argparse.Namespace, url: str) -> None:
    base = url.rstrip("/") + "/api/v1"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    # warm-up: connections, imports, caches
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        for _ in range(20):
            await http.get("/presets")

    async def submit(http: httpx.AsyncClient, client: int, i: int) -> httpx.Response:
        body = {
            "scenario": {"name": f"bench-{client}-{i}", "seed": client * 100_000 + i,
                         "total_patients": 10},
            "formats": ["ndjson"],
        }  # fmt: skip
        return await http.post("/jobs", json=body)

    ids = await run_phase(
        "POST /jobs", args.clients, args.submits // args.clients, submit, base, headers
    )
    if not ids:
        raise SystemExit("no job was created")

    async def get(http: httpx.AsyncClient, client: int, i: int) -> httpx.Response:
        return await http.get(f"/jobs/{random.choice(ids)}")

    await run_phase("GET /jobs/{id}", args.clients, args.gets // args.clients, get, base, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--api-key", help="API key for --url")
    parser.add_argument("--database-url", help="store of the service this script starts")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=10000)
    args = parser.parse_args()
    print(
        f"{args.clients} concurrent clients, {args.submits} submits, {args.gets} reads "
        + (
            f"(the service at {args.url})"
            if args.url
            else "(patientgen serve --workers 0 --auth required on "
            + ("PostgreSQL)" if (args.database_url or "").startswith("postgres") else "SQLite)")
        )
    )
    if args.url:
        asyncio.run(main_async(args, args.url))
        return
    with tempfile.TemporaryDirectory(prefix="patientgen-bench-") as tmp:
        proc, url, args.api_key = start_server(Path(tmp), args.database_url)
        try:
            asyncio.run(main_async(args, url))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
