"""An S3-compatible server for the object-storage tests, and a gate to cut the network to it.

The server is moto's (`moto[server]`, installed by `make test` from the package index): an S3
implementation in Python that keeps its objects in memory and speaks the calls the product
makes (PUT, multipart uploads, ranged GET, listings, batch delete, multipart listing and abort,
presigned URLs), with S3's own rules where they matter here (a multipart part under 5 MiB is
refused unless it is the last). No server storing on disk installs from the registries these
machines reach (MinIO, Garage, SeaweedFS and Zenko CloudServer do not; Ceph's radosgw needs a
cluster), so an outage is simulated by `Gate`: a TCP relay in front of the server that refuses
and cuts connections while closed, which is what a client sees of a restarting server.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port, wait_until

ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"


class S3Server:
    """`moto_server` on `host` (127.0.0.1 by default), started and awaited; `stop()` ends it."""

    def __init__(self, log: Path, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.endpoint = f"http://{host}:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115
        script = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(script), "-H", host, "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, timeout=30, step=0.1)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
        try:
            return httpx.get(self.endpoint + "/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
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
def running(log: Path, host: str = "127.0.0.1") -> Iterator[S3Server]:
    server = S3Server(log, host)
    try:
        yield server
    finally:
        server.stop()
