"""This machine: free loopback ports, whether something answers on one, whether a process
is alive. For the services hqlake starts itself (SeaweedFS, the SMTP sink, `make airflow`'s
stack) and for their tests; the standard library only, so any module of infra may import it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel hands out as free on the loopback address; the
    sockets stay open until all are picked, then close (a server may bind them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """A port free on the loopback address (nothing listens on it once this returns)."""
    return free_ports(1)[0]


def port_taken(port: int) -> bool:
    """Whether something accepts connections on the loopback address at `port`."""
    with socket.socket() as s:
        return s.connect_ex((LOOPBACK, port)) == 0


def alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists (ours or another user's) and is not a zombie
    (exited, waiting for its parent to read its status)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone since, or no /proc: as os.kill saw it
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # the state follows "(command)"
