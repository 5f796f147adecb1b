"""Object storage: which S3 library, and what a FHIR job costs on object storage vs the local disk.

    .venv/bin/python bench/storage.py [--patients 20000] [--runs 3]

Starts an S3 server on loopback (Ceph's S3 gateway on a one-node cluster, as the tests do:
tests/s3_server.py) and prints:

1. boto3 against obstore for what the product does with a bucket: send a 128 MiB file, fetch it
   to disk, and 500 ranged reads of 4 KiB (the patient pages read records so); median of
   `--runs` each. obstore is installed with `pip install -e '.[bench]'`.
2. A FHIR job (`--patients`, chunks of 5,000) run by one in-process worker with its files on the
   local disk, then in the bucket: median seconds of `--runs` each, and their ratio, with the
   CPU seconds of this process and of the Ceph daemons in each run (they share these cores).
   With `--link-mbit N` the bucket is reached through a relay (tests/s3_server.py `Gate`)
   that passes N Mbit/s each way, as a server elsewhere would. `--only-jobs` skips part 1.

The server runs on the same machine as the worker, so its CPU is taken from the generator: a
store elsewhere (any real deployment) leaves the worker its cores.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# the repository first, for the tests' S3 server (tests/s3_server.py)
sys.path[0] = str(Path(__file__).resolve().parents[1])

from tests import s3_server  # noqa: E402

FILE_BYTES = 128 << 20
RANGES = 500


def _median(runs: int, once: Callable[[], float]) -> float:
    return statistics.median(once() for _ in range(runs))


def _libraries(endpoint: str, folder: Path, runs: int) -> None:
    from patientgen.jobs.objects import ObjectStore

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    source = folder / "blob"
    source.write_bytes(os.urandom(FILE_BYTES))
    env = s3_server.storage_env(endpoint, bucket)
    boto = ObjectStore(
        env["storage_url"],
        endpoint=endpoint,
        region=s3_server.REGION,
        access_key=s3_server.ACCESS_KEY,
        secret_key=s3_server.SECRET_KEY,
    )
    boto.ensure_bucket()
    offsets = [random.Random(7).randrange(FILE_BYTES - 4096) for _ in range(RANGES)]

    def timed(action: Callable[[], object]) -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    rows: list[tuple[str, float, float, float]] = []
    rows.append(
        (
            "boto3",
            _median(runs, lambda: timed(lambda: boto.upload(source, "pg/blob"))),
            _median(runs, lambda: timed(lambda: boto.download("pg/blob", folder / "back"))),
            _median(
                runs,
                lambda: timed(
                    lambda: [b"".join(boto.stream("pg/blob", o, o + 4095)) for o in offsets]
                ),
            ),
        )
    )
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        print("obstore is not installed (pip install -e '.[bench]'): boto3 only")
    else:
        store = S3Store(
            bucket,
            endpoint=endpoint,
            region=s3_server.REGION,
            access_key_id=s3_server.ACCESS_KEY,
            secret_access_key=s3_server.SECRET_KEY,
            client_options={"allow_http": True},
        )

        def put() -> None:
            with open(source, "rb") as f:
                obstore.put(store, "pg/blob2", f, chunk_size=64 << 20, max_concurrency=4)

        def get() -> None:
            with open(folder / "back2", "wb") as f:
                for block in obstore.get(store, "pg/blob2").stream(1 << 20):
                    f.write(block)

        def ranged() -> None:
            for o in offsets:
                bytes(obstore.get_range(store, "pg/blob2", start=o, end=o + 4096))

        rows.append(
            (
                "obstore",
                _median(runs, lambda: timed(put)),
                _median(runs, lambda: timed(get)),
                _median(runs, lambda: timed(ranged)),
            )
        )
    print(f"\n{FILE_BYTES >> 20} MiB file, {RANGES} ranged reads of 4 KiB; median of {runs} runs")
    print(f"{'library':<10}{'upload s':>10}{'download s':>12}{'ranges s':>10}")
    for name, up, down, ranges in rows:
        print(f"{name:<10}{up:>10.2f}{down:>12.2f}{ranges:>10.2f}")


def _cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _job_seconds(settings, patients: int) -> float:
    from patientgen.jobs.model import JobStatus
    from patientgen.jobs.service import JobService
    from patientgen.jobs.worker import Worker
    from patientgen.scenario import Scenario

    scenario = Scenario(name="bench storage", total_patients=patients, seed=5)
    with JobService.open(settings) as service:
        job, _ = service.submit(scenario, ["fhir"], "local")
        started = time.perf_counter()
        Worker(settings, max_jobs=1).run()
        seconds = time.perf_counter() - started
        assert service.get(job.job_id).status == JobStatus.COMPLETED
    return seconds


def _jobs(
    server: s3_server.S3Server,
    endpoint: str,
    folder: Path,
    patients: int,
    runs: int,
    link: str = "",
) -> None:
    from patientgen.settings import Settings

    def measured(settings) -> tuple[float, float, float]:
        """Wall seconds, this process's CPU seconds and the Ceph daemons' of one job."""
        mine, theirs = _cpu_seconds(), server.cpu_seconds()
        wall = _job_seconds(settings, patients)
        return wall, _cpu_seconds() - mine, server.cpu_seconds() - theirs

    def local() -> tuple[float, float, float]:
        data = Path(tempfile.mkdtemp(dir=folder))
        return measured(Settings(data_dir=data, chunk_size=5_000))

    def objects() -> tuple[float, float, float]:
        data = Path(tempfile.mkdtemp(dir=folder))
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        return measured(
            Settings(data_dir=data, chunk_size=5_000, **s3_server.storage_env(endpoint, bucket))
        )

    on_disk = [local() for _ in range(runs)]
    in_bucket = [objects() for _ in range(runs)]
    print(f"\nFHIR job of {patients:,} patients, one worker, median of {runs} runs{link}")
    print(f"{'':<16}{'wall s':>8}{'worker CPU s':>14}{'Ceph CPU s':>12}")
    for name, rows in (("local disk", on_disk), ("object storage", in_bucket)):
        wall, mine, theirs = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{name:<16}{wall:8.1f}{mine:14.1f}{theirs:12.1f}")
    ratio = statistics.median(r[0] for r in in_bucket) / statistics.median(r[0] for r in on_disk)
    print(f"object storage / local disk: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--link-mbit", type=float, default=0, help="reach the bucket at N Mbit/s")
    parser.add_argument("--only-jobs", action="store_true", help="skip the library comparison")
    args = parser.parse_args()
    print(f"CPUs: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        folder = Path(tmp)
        with s3_server.running(folder / "ceph") as server:
            if not args.only_jobs:
                _libraries(server.endpoint, folder, args.runs)
            if not args.link_mbit:
                _jobs(server, server.endpoint, folder, args.patients, args.runs)
                return
            link = s3_server.Gate(server.port, bytes_per_second=args.link_mbit * 1e6 / 8)
            try:
                note = f", the bucket through a {args.link_mbit:g} Mbit/s link"
                _jobs(server, link.endpoint, folder, args.patients, args.runs, note)
            finally:
                link.stop()


if __name__ == "__main__":
    main()
