"""An S3-compatible server for the object-storage tests, and a gate to cut the network to it.

The server is Ceph's S3 gateway (radosgw, from Debian's packages: `scripts/ensure-ceph.sh`,
run by `make test`) in front of a one-node Ceph cluster the tests start in a temporary folder:
one monitor and one OSD keeping its objects in memory (memstore), no authentication between
them, each pool one replica. It is a real S3 implementation, with S3's own rules where they
matter here (a multipart part under 5 MiB is refused unless it is the last; UploadPartCopy,
ranged GET, listings, batch delete, multipart listing and abort, presigned URLs).

`S3Server.restart()` kills the gateway with SIGKILL and starts it again: the objects and the
unfinished multipart uploads live in the cluster, so they are still there, as after a real
restart of the object store. `Gate`, a TCP relay in front of the server that refuses and cuts
connections while closed, is what a client sees of a server it cannot reach.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port, proc_stat, wait_until

ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"
CEPH_PROGRAMS = ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")

_CONF = """[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# the monitor commits each change at once, not once a second: the gateway makes its pools one
# by one as it starts, 1 s instead of 9
paxos propose interval = 0.05
paxos min wait = 0.01
osd crush update on start = false
osd class update on start = false
osd objectstore = memstore
memstore device bytes = 4294967296
osd max object name len = 460
osd max object namespace len = 64
run dir = {folder}/run
log file = {folder}/log/$name.log
admin socket = {folder}/run/$name.asok
pid file = {folder}/run/$name.pid
mon data = {folder}/mon/$id
osd data = {folder}/osd/$id
[client.rgw.a]
rgw frontends = beast endpoint={host}:{port} tcp_nodelay=1
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process ends, however it ends, so a
    killed test run leaves no Ceph daemon behind."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class S3Server:
    """A one-node Ceph cluster in `folder` and its S3 gateway on `host` (127.0.0.1 by default),
    started and awaited (about 1.5 s); `restart()` kills and restarts the gateway, `stop()`
    ends them all."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        missing = [p for p in CEPH_PROGRAMS if shutil.which(p) is None]
        if missing:
            raise RuntimeError(
                f"{', '.join(missing)} not found: the object-storage tests run Ceph's S3 gateway;"
                " run 'sh scripts/ensure-ceph.sh' as root (make test does)"
            )
        self.folder = folder
        self.port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._http = httpx.Client(timeout=1)  # one TLS context, not one per poll
        self._log = open(folder / "daemons.log", "ab")  # noqa: SIM115
        for sub in ("run", "log", "mon", "osd"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        mon_port, fsid = free_port(), uuid.uuid4()
        conf = folder / "ceph.conf"
        conf.write_text(
            _CONF.format(fsid=fsid, mon_port=mon_port, folder=folder, host=host, port=self.port)
        )
        self._conf = ["-c", str(conf)]
        try:
            monmap = str(folder / "monmap")
            address = f"v1:127.0.0.1:{mon_port}"
            self._run("monmaptool", "--create", "--add", "a", address, "--fsid", str(fsid), monmap)
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
            self._start("mon", "ceph-mon", "-i", "a")
            osd_uuid = str(uuid.uuid4())
            osd = self._monitor("osd", "create", osd_uuid).strip()  # again: the same OSD
            # placed here, not by the OSD as it starts: its own request could leave before it
            # knew the cluster's id, refused as 'wrong fsid', and the OSD exited (seen under load)
            self._monitor("osd", "crush", "add", f"osd.{osd}", "1.0", "root=default")
            (folder / "osd" / osd).mkdir()
            self._run("ceph-osd", "-i", osd, "--mkfs", "--osd-uuid", osd_uuid)
            self._start("osd", "ceph-osd", "-i", osd)
            self._start_gateway()
            wait_until(self._answers, timeout=90, step=0.1)
            self._run(
                "radosgw-admin", "user", "create", "--uid=test", "--display-name=test",
                f"--access-key={ACCESS_KEY}", f"--secret={SECRET_KEY}",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def _monitor(self, *args: str) -> str:
        """A `ceph` command to the monitor (each one sent here is idempotent), run again for up
        to 30 s: a monitor just started may refuse one ("EPERM: problem getting command
        descriptions"), seen on a loaded machine."""
        return self._run("ceph", *args, retry_for=30.0)

    def _run(self, program: str, *args: str, retry_for: float = 0.0) -> str:
        """Run a Ceph program; its output. A failure is run again for `retry_for` seconds."""
        conf = [] if program == "monmaptool" else self._conf  # it takes no configuration
        deadline = time.monotonic() + retry_for
        while True:
            done = subprocess.run(
                [program, *conf, *args], capture_output=True, text=True, timeout=60
            )
            if done.returncode == 0:
                return done.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"{program} {' '.join(args)}: {done.stderr.strip()[-2000:]}")
            time.sleep(0.2)

    def _start(self, name: str, program: str, *args: str) -> None:
        self._procs[name] = subprocess.Popen(
            [program, *self._conf, "-f", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def _start_gateway(self) -> None:
        self._start("rgw", "radosgw", "-n", "client.rgw.a")

    def _answers(self) -> bool:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Ceph's {name} exited with {proc.returncode}; see {self.folder / 'log'}"
                )
        try:
            return self._http.get(self.endpoint + "/").status_code < 500
        except httpx.HTTPError:
            return False

    def cpu_seconds(self) -> float:
        """CPU seconds the cluster's running daemons have used (for bench/storage.py)."""
        total = 0
        for proc in self._procs.values():
            if (fields := proc_stat(proc.pid)) is not None:
                total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def restart(self, down: float = 0.0) -> None:
        """Kill the gateway (SIGKILL, as a crash), wait `down` seconds, start it again and wait
        until it answers. What the cluster holds is kept."""
        proc = self._procs["rgw"]
        proc.kill()
        proc.wait()
        time.sleep(down)
        self._start_gateway()
        wait_until(self._answers, timeout=60, step=0.05)

    def stop(self) -> None:
        """Kill every daemon: the cluster keeps its objects in memory, nothing to flush."""
        for proc in self._procs.values():
            proc.kill()
            proc.wait()
        self._procs = {}
        self._http.close()
        self._log.close()


def storage_env(endpoint: str, bucket: str) -> dict[str, Any]:
    """The settings (for Settings.model_copy) of a process that keeps its jobs' files in
    `bucket` on the server at `endpoint`, under the prefix `pg/`."""
    from pydantic import SecretStr

    return {
        "storage_url": f"s3://{bucket}/pg",
        "storage_endpoint": endpoint,
        "storage_region": REGION,
        "storage_access_key": ACCESS_KEY,
        "storage_secret_key": SecretStr(SECRET_KEY),
    }


def objects(endpoint: str, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under `prefix` of `bucket`, read through a client of the test's own."""
    client = client_for(endpoint)
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """The keys under `prefix` of `bucket` (listed only: objects may go meanwhile)."""
    pages = (
        client_for(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def uploads(endpoint: str, bucket: str) -> list[str]:
    """The keys of the multipart uploads begun and not finished in `bucket`."""
    pages = client_for(endpoint).get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
    return [u["Key"] for page in pages for u in page.get("Uploads", ())]


def client_for(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


class _Link:
    """One direction of a link of `rate` bytes a second, shared by every connection through
    it: each block waits until the blocks before it have gone through."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0
        self._lock = threading.Lock()

    def wait(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free_at = max(now, self._free_at) + size / self.rate
            until = self._free_at
        time.sleep(max(0.0, until - now))


class Gate:
    """A TCP relay from host:<port> (127.0.0.1 by default) to target_host:target_port; `close()`
    cuts every connection and refuses new ones until `open()`. With `bytes_per_second`, each
    direction is a link of that capacity (a server elsewhere, for bench/storage.py)."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        bytes_per_second: float | None = None,
    ) -> None:
        self.links = (
            (_Link(bytes_per_second), _Link(bytes_per_second)) if bytes_per_second else (None, None)
        )
        self.target = (target_host, target_port)
        self.host = host
        self.port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = False
        self._listen()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(0.2)  # accept wakes up to see a close
        self._listener = listener

    def _accept_loop(self) -> None:
        while not self._stopped:
            self._open.wait()
            listener = self._listener
            if listener is None:
                continue
            try:
                client, _ = listener.accept()
            except OSError:  # a timeout, or closed meanwhile
                continue
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b, link in (
                (client, upstream, self.links[0]),
                (upstream, client, self.links[1]),
            ):
                threading.Thread(target=_pump, args=(a, b, link), daemon=True).start()

    def close(self) -> None:
        """Refuse new connections (the port is closed) and cut the open ones."""
        self._open.clear()
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns = []

    def open(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listen()
        self._open.set()

    def stop(self) -> None:
        self._stopped = True
        self.close()
        self._open.set()


def _pump(source: socket.socket, target: socket.socket, link: _Link | None = None) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            if link is not None:
                link.wait(len(data))
            target.sendall(data)
    for conn in (source, target):
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def running(folder: Path, host: str = "127.0.0.1") -> Iterator[S3Server]:
    """An S3 server with its cluster in `folder` (made if missing), stopped on leaving."""
    folder.mkdir(parents=True, exist_ok=True)
    server = S3Server(folder, host)
    try:
        yield server
    finally:
        server.stop()
