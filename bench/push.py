"""Push throughput: resources/s into a FHIR server and messages/s to an MLLP listener.

    .venv/bin/python bench/push.py                     # 1,000 patients, 3 runs per target
    .venv/bin/python bench/push.py --patients 2000 --runs 5 --bundle-size 200

A completed job is made once (SQLite in a temporary folder under /var/tmp); each run pushes it
as a delivery job in this process, the way `patientgen push` does:
- FHIR: into the tests' FHIR server (tests/fhir-validator/server.mjs: Medplum's request engine
  over its in-memory repository, validating every write), a fresh one per run, started here;
  run `sh scripts/ensure-fhir-validator.sh` first. The server validates each resource (as a
  real one does), so the figure is mostly the server's.
- MLLP: to a listener in this process that answers AA at once (no parsing), so the figure is the
  sender's: framing, one round trip and one saved checkpoint per message.
Prints the median and the spread of the runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "fhir-validator" / "server.mjs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Acks(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        buffer = b""
        while data := self.request.recv(65536):
            buffer += data
            while b"\x1c\r" in buffer:
                message, buffer = buffer.split(b"\x1c\r", 1)
                control = message.lstrip(b"\x0b").split(b"\r", 1)[0].split(b"|")[9]
                self.request.sendall(
                    b"\x0bMSH|^~\\&|BENCH|BENCH|PATIENTGEN|BENCH|20260101||ACK|b|P|2.5.1\r"
                    b"MSA|AA|" + control + b"\r\x1c\r"
                )


def node() -> str:
    found = shutil.which("node", path=os.pathsep.join([str(Path(sys.executable).parent), ""]))
    found = found or shutil.which("node")
    if not found:
        sys.exit("Node.js is missing: `make install-test` puts it into .venv")
    return found


def push_once(service, job_id: str, target: dict) -> dict:
    delivery, _ = service.push(job_id, target)
    ended, _ = service.run_here(delivery.job_id, threading.Event())
    if ended.status.value != "completed":
        sys.exit(f"the push failed: {ended.error}")
    return ended.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bundle-size", type=int, default=100)
    args = parser.parse_args()

    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="bench-push-", dir="/var/tmp"))
    settings = Settings(data_dir=folder, database_url=f"sqlite:///{folder / 'db.sqlite'}")
    try:
        with JobService.open(settings) as service:
            job, _ = service.submit({"total_patients": args.patients, "seed": 1}, ["ndjson"])
            job, _ = service.run_here(job.job_id, threading.Event())
            job_id = str(job.job_id)
            fhir_rates, fhir_totals = [], []
            for _ in range(args.runs):
                port = free_port()
                proc = subprocess.Popen(  # a group: `node` may be a launcher of the real one
                    [node(), str(SERVER), "--port", str(port)],
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
                try:
                    assert proc.stdout is not None and proc.stdout.readline().startswith("listen")
                    url = f"http://127.0.0.1:{port}/fhir/R4"
                    target = {"target": "fhir", "url": url, "bundle_size": args.bundle_size}
                    report = push_once(service, job_id, target)
                finally:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                fhir_rates.append(report["rate"])
                fhir_totals.append(report["delivered"])
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Acks)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            mllp_rates = []
            for _ in range(args.runs):
                target = {"target": "mllp", "host": "127.0.0.1", "port": server.server_address[1]}
                mllp_rates.append(push_once(service, job_id, target)["rate"])
            server.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def line(name: str, rates: list[float], unit: str) -> str:
        return (
            f"{name:<6} median {statistics.median(rates):>9,.0f} {unit}/s"
            f"  (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )

    print(f"push of {args.patients:,} patients, {args.runs} runs each, SQLite checkpoints")
    print(line("FHIR", fhir_rates, "resources") + f", {fhir_totals[0]:,} resources a run,"
          f" bundles of {args.bundle_size}")  # fmt: skip
    print(line("MLLP", mllp_rates, "messages"))


if __name__ == "__main__":
    main()
