"""The S3 client of every hqlake process: minio's, with connection retries that give up.

minio's own urllib3 pool waits 5 minutes to connect and retries a refused connection 5
times with back-off (about 6 s before an operator hears that the store is down; a host that
drops packets held a task for half an hour). Here: 10 s to connect, 2 retries of a failed
connection (0.4 s of back-off), and otherwise minio's policy: 5 retries of a 500/502/503/504
and of a broken read, 5 minutes to read (a large object). Certificates: verified against
the system's store (and SSL_CERT_FILE, which OpenSSL reads), so a commission's own CA
installed on the host is trusted.
"""

from __future__ import annotations

import urllib3
from minio import Minio
from urllib3.util import Retry, Timeout

CONNECT_SECONDS = 10.0
READ_SECONDS = 300.0


def http_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        retries=Retry(
            total=5, connect=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )


def s3_client(endpoint: str, access_key: str, secret_key: str, *, secure: bool) -> Minio:
    """A client of the S3 API at `endpoint` (host:port)."""
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        http_client=http_pool(),
    )
