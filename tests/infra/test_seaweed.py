import glob
import io
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from infra.home import private_dir, s3_keys
from infra.localhost import alive, port_taken
from infra.seaweed import SeaweedServer, weed_binary
from infra.settings import from_env

pytestmark = pytest.mark.integration


def test_start_serve_stop_then_start_again(tmp_path):
    for round_ in range(2):  # two runs back to back: no port clash, no leftover process
        server = SeaweedServer(tmp_path / "weed", ("lake", "inbox"), "ak", "sk").start()
        pid, port = server.process.pid, server.ports["s3.port"]
        client = server.client()
        client.put_object("lake", f"r{round_}.txt", io.BytesIO(b"hello"), 5)
        assert client.get_object("lake", f"r{round_}.txt").read() == b"hello"
        assert client.bucket_exists("inbox")
        server.stop()
        assert not alive(pid)
        assert not port_taken(port)


def test_a_shared_server_is_found_while_it_runs_and_not_after(tmp_path):
    """`make airflow`'s SeaweedFS (infra.seaweed.share): the runtime of a process on the
    home finds it while it answers; a record left by a stopped server is ignored."""
    from infra.seaweed import share, shared_server, unshare

    data = tmp_path / "weed"
    assert shared_server(data) is None
    server = SeaweedServer(data, ("lake",), "ak", "sk").start()
    try:
        share(server)
        found = shared_server(data)
        assert found == {
            "owner": os.getpid(),
            "pid": server.process.pid,
            "endpoint": server.endpoint,
        }
        assert stat.S_IMODE((data / "shared.json").stat().st_mode) == 0o600
    finally:
        server.stop()
    assert (data / "shared.json").exists() and shared_server(data) is None  # stale: ignored
    unshare(data)
    assert not (data / "shared.json").exists()


def test_no_orphan_when_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from infra.seaweed import SeaweedServer
        s = SeaweedServer(Path({str(tmp_path / "w")!r}), ("lake",), "ak", "sk").start()
        print(s.process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    weed_pid = int(parent.stdout.readline())
    assert alive(weed_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while alive(weed_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(weed_pid), "weed outlived its parent"


# Anyone on the machine can reach loopback: the lake (names, identity numbers, phones) must be
# readable and writable only with this home's keys, on every port weed opens.

_SECRET = b"110101199003077777,Zhang San,13800000000"


def _http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def lake_object(seaweed, config):
    key = f"secrets-test/{uuid.uuid4().hex}.csv"
    client = seaweed.client()
    client.put_object(config.lake_bucket, key, io.BytesIO(_SECRET), len(_SECRET))
    yield config.lake_bucket, key
    client.remove_object(config.lake_bucket, key)


def test_s3_refuses_anonymous_and_wrong_keys(seaweed, lake_object):
    bucket, key = lake_object
    s3 = f"http://{seaweed.endpoint}"
    status, body = _http(f"{s3}/{bucket}/{key}")
    assert status == 403 and _SECRET not in body
    assert _http(f"{s3}/{bucket}/")[0] == 403  # no listing either
    assert _http(f"{s3}/{bucket}/planted.csv", "PUT", b"forged")[0] == 403
    for access_key, secret_key in (
        (seaweed.access_key, "wrong-secret"),
        ("hqlake", "hqlake-local"),  # the keys every home had before
    ):
        intruder = Minio(seaweed.endpoint, access_key, secret_key, secure=False)
        with pytest.raises(S3Error) as refused:
            intruder.get_object(bucket, key)
        assert refused.value.response.status == 403
        with pytest.raises(S3Error):
            intruder.put_object(bucket, "planted.csv", io.BytesIO(b"forged"), 6)
    assert seaweed.client().get_object(bucket, key).read() == _SECRET
    assert not any(o.object_name == "planted.csv" for o in seaweed.client().list_objects(bucket))


def _grpc_handshake(port: int, cert: tuple[Path, Path] | None) -> bytes:
    """Open TLS to a gRPC port (with or without a client certificate) and read its first frame."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if cert:
        context.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        return tls.recv(64)


def _file_id(seaweed, bucket: str, key: str) -> str:
    """The volume file id of an object, asked of the filer over gRPC with weed's own client
    certificate: what an intruder would need to fetch the bytes from the volume server."""
    tls = seaweed.data_dir / "tls"
    ports = seaweed.ports
    shell = subprocess.run(
        [
            weed_binary(),
            "shell",
            f"-master=127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}",
            f"-filer=127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}",
        ],
        input=f"fs.meta.cat /buckets/{bucket}/{key}\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=seaweed.data_dir.parent,
        env={
            "PATH": os.environ["PATH"],
            "WEED_GRPC_CA": str(tls / "ca.crt"),
            "WEED_GRPC_CLIENT_CERT": str(tls / "weed.crt"),
            "WEED_GRPC_CLIENT_KEY": str(tls / "weed.key"),
        },
    )
    found = re.findall(r'"fileId":\s*"([^"]+)"', shell.stdout)
    assert found, shell.stdout + shell.stderr
    return found[0]


def test_filer_master_and_volume_ports_do_not_serve_the_lake(seaweed, lake_object, tmp_path):
    bucket, key = lake_object
    ports = seaweed.ports
    filer = f"http://127.0.0.1:{ports['filer.port']}"
    for url in (f"{filer}/buckets/{bucket}/{key}", f"{filer}/buckets/{bucket}/?pretty=y"):
        status, body = _http(url)
        assert status >= 400 and _SECRET not in body and key.split("/")[-1].encode() not in body
    assert _http(f"{filer}/buckets/{bucket}/planted.csv", "POST", b"forged")[0] >= 400

    # Even an intruder who knew the file id gets no bytes from the volume server, and the
    # master hands out no read token for it.
    fid = _file_id(seaweed, bucket, key)
    status, body = _http(f"http://127.0.0.1:{ports['volume.port']}/{fid}")
    assert status == 401 and _SECRET not in body
    assert (
        _http(f"http://127.0.0.1:{ports['master.port']}/dir/lookup?fileId={fid}&read=yes")[0] >= 400
    )

    # gRPC (metadata, file ids, IAM) only for a client with this run's certificate.
    from infra.seaweed import _grpc_tls  # another run's certificate, signed by another CA

    tls = seaweed.data_dir / "tls"
    own = (tls / "weed.crt", tls / "weed.key")
    foreign = _grpc_tls(tmp_path / "foreign")
    strangers = (None, (foreign["WEED_GRPC_CLIENT_CERT"], foreign["WEED_GRPC_CLIENT_KEY"]))
    for port in ("filer.port.grpc", "master.port.grpc", "volume.port.grpc", "s3.port.grpc"):
        assert _grpc_handshake(ports[port], own)  # the server speaks HTTP/2 to weed's own
        for cert in strangers:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _grpc_handshake(ports[port], cert)


def test_weed_files_are_owner_only(seaweed):
    # The data folder is the lock on the volumes (weed writes some files 0644 on its own).
    assert stat.S_IMODE(seaweed.data_dir.stat().st_mode) == 0o700
    tls = seaweed.data_dir / "tls"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in tls.iterdir()} == {0o600}
    assert stat.S_IMODE((seaweed.data_dir / "weed.log").stat().st_mode) == 0o600
    # Local sockets live in /tmp, outside the data folder: others must not connect.
    sockets = [
        Path(found)
        for port in seaweed.ports.values()
        for found in glob.glob(f"/tmp/seaweedfs-*-{port}.sock")
    ]
    assert sockets and all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in sockets), [
        (p, oct(p.stat().st_mode)) for p in sockets
    ]


def test_a_home_from_before_keeps_its_lake_and_is_closed(tmp_path):
    """A home made by an older hqlake: no secrets, weed's files open to all (umask 022), data
    written when any key was accepted. It gets its keys on first use and keeps its lake."""
    home = tmp_path / "home"
    before = SeaweedServer(home / "seaweedfs", ("lake",), "hqlake", "hqlake-local").start()
    before.client().put_object("lake", "old.csv", io.BytesIO(_SECRET), len(_SECRET))
    before.stop()
    shutil.rmtree(home / "seaweedfs" / "tls")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    config = from_env({"HQLAKE_HOME": str(home)})
    private_dir(config.home)  # what runtime() does first
    with SeaweedServer(config.seaweed_dir, ("lake",), *s3_keys(config)) as server:
        assert server.client().get_object("lake", "old.csv").read() == _SECRET
        assert _http(f"http://{server.endpoint}/lake/old.csv")[0] == 403
        assert (
            _http(f"http://127.0.0.1:{server.ports['filer.port']}/buckets/lake/old.csv")[0] >= 400
        )
        intruder = Minio(server.endpoint, "hqlake", "hqlake-local", secure=False)
        with pytest.raises(S3Error):
            intruder.get_object("lake", "old.csv")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.seaweed_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"endpoint": 5}',
        '{"endpoint": "http://127.0.0.1:x", "pid": 1, "owner": 1}',
        '{"endpoint": "http://127.0.0.1:8333"}',
    ],
)
def test_a_damaged_shared_record_means_no_shared_server(tmp_path, text):
    """A damaged shared.json (a crash mid-write, a careless edit) makes the process start its
    own server, not fail with a traceback."""
    from infra.seaweed import shared_server

    (tmp_path / "shared.json").write_text(text)
    assert shared_server(tmp_path) is None
