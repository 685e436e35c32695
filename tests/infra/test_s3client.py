"""The S3 client gives up on a store it cannot reach, verifies certificates, and still
retries what a busy store answers (infra/s3client.py)."""

from __future__ import annotations

import pytest
import urllib3

from infra.localhost import free_port
from infra.s3client import s3_client


def _client(secure: bool = False):
    """A client of a closed loopback port: nothing answers it."""
    return s3_client(f"127.0.0.1:{free_port()}", "key", "secret-key-0123", secure=secure)


def _pool(secure: bool = False) -> urllib3.PoolManager:
    return _client(secure)._http  # the pool minio sends with is what is checked


def test_connection_failures_are_retried_twice_busy_answers_five_times():
    kw = _pool().connection_pool_kw
    retries, timeout = kw["retries"], kw["timeout"]
    assert (retries.total, retries.connect) == (5, 2)
    assert set(retries.status_forcelist) == {500, 502, 503, 504}
    assert (timeout.connect_timeout, timeout.read_timeout) == (10.0, 300.0)


def test_a_store_that_refuses_connections_is_an_error_not_a_wait():
    with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
        _client().bucket_exists("lake")
    assert isinstance(refused.value.reason, urllib3.exceptions.NewConnectionError)
    assert "Connection refused" in str(refused.value.reason)


def test_tls_certificates_are_required():
    assert _pool(secure=True).connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
