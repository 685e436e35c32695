import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from infra.seaweed import SeaweedServer

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead for our purposes
        return f.read().split()[2] != "Z"


def test_start_serve_stop_then_start_again(tmp_path):
    for round_ in range(2):  # two runs back to back: no port clash, no leftover process
        server = SeaweedServer(tmp_path / "weed", ("lake", "inbox")).start()
        pid, port = server.process.pid, server.ports["s3.port"]
        client = server.client()
        client.put_object("lake", f"r{round_}.txt", io.BytesIO(b"hello"), 5)
        assert client.get_object("lake", f"r{round_}.txt").read() == b"hello"
        assert client.bucket_exists("inbox")
        server.stop()
        assert not _alive(pid)
        assert not _port_open(port)


def test_no_orphan_when_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from infra.seaweed import SeaweedServer
        s = SeaweedServer(Path({str(tmp_path / "w")!r}), ("lake",)).start()
        print(s.process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    weed_pid = int(parent.stdout.readline())
    assert _alive(weed_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while _alive(weed_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(weed_pid), "weed outlived its parent"
