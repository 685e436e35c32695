"""Passwords, logins, the throttle and sessions (infra/portal/auth.py) over a real SQLite
store, judged at given times. The logins hash at the cheapest Argon2id cost
(`cheap_portal_config`); the first test hashes at contracts/portal.yaml's."""

from __future__ import annotations

import datetime as dt

import pytest

from infra.portal.auth import (
    Authenticator,
    LoginResult,
    hash_password,
    password_hasher,
    verify_password,
)
from infra.portal.config import load_portal_config
from infra.portal.store import PortalStore
from tests.infra.portal.conftest import cheap_portal_config

T0 = dt.datetime(2026, 11, 10, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"
HERE = "10.0.0.1"


@pytest.fixture
def auth(tmp_path) -> Authenticator:
    store = PortalStore.open(tmp_path / "portal")
    auth = Authenticator(store, cheap_portal_config())
    store.add_user("qc.wang", "city", "", hash_password(PASSWORD, auth.hasher), now=T0)
    store.add_user("qc.li", "city", "", hash_password(PASSWORD, auth.hasher), now=T0)
    return auth


def login(auth, name="qc.wang", password=PASSWORD, *, at=T0, address=HERE, old=None):
    return auth.login(name, password, address, now=at, old_session=old)


def test_passwords_are_argon2id_hashes_never_the_password():
    cost = load_portal_config().passwords.hashing  # the production cost
    hashed = hash_password(PASSWORD)
    assert hashed.startswith(
        f"$argon2id$v=19$m={cost.memory_kib},t={cost.time_cost},p={cost.parallelism}$"
    )
    assert PASSWORD not in hashed
    assert hash_password(PASSWORD) != hashed  # salted
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + "!")
    assert not verify_password("not a hash", PASSWORD)


def test_a_hash_of_another_cost_is_made_again_at_the_next_login(auth):
    production = Authenticator(auth.store, load_portal_config())
    assert login(production).result is LoginResult.ok  # qc.wang's hash has the cheap cost
    rehashed = auth.store.user("qc.wang").password_hash
    assert not production.hasher.check_needs_rehash(rehashed)
    assert auth.hasher.check_needs_rehash(rehashed) and verify_password(rehashed, PASSWORD)
    assert (
        password_hasher(load_portal_config().passwords.hashing).hash(PASSWORD)[:31]
        == (rehashed[:31])
    )  # the parameters' part: $argon2id$v=19$m=65536,t=3,p=4$


def test_a_login_makes_a_new_session_and_deletes_the_one_it_came_with(auth):
    first = login(auth)
    assert first.result is LoginResult.ok and first.user.name == "qc.wang"
    assert auth.session(first.session_id, now=T0) is not None
    second = login(auth, at=T0 + dt.timedelta(minutes=1), old=first.session_id)
    assert second.session_id != first.session_id
    assert auth.session(first.session_id, now=T0 + dt.timedelta(minutes=1)) is None
    assert auth.session(second.session_id, now=T0 + dt.timedelta(minutes=1)) is not None
    assert len(second.session_id) >= 43  # 32 random bytes, URL-safe base64


def test_the_store_keeps_a_hash_of_the_session_id_not_the_id(auth):
    session_id = login(auth).session_id
    assert session_id.encode() not in auth.store.path.read_bytes()
    wal = auth.store.path.with_name(auth.store.path.name + "-wal")
    assert not wal.exists() or session_id.encode() not in wal.read_bytes()


def test_sessions_end_when_idle_and_after_the_absolute_limit(auth):
    sessions = auth.config.sessions
    idle = login(auth).session_id
    assert auth.session(idle, now=T0 + sessions.idle - dt.timedelta(seconds=1)) is not None
    later = T0 + sessions.idle - dt.timedelta(seconds=1) + sessions.idle + dt.timedelta(seconds=1)
    assert auth.session(idle, now=later) is None
    assert auth.store.session(idle) is None  # deleted, not merely refused

    busy = login(auth).session_id
    at = T0
    while at + sessions.idle / 2 < T0 + sessions.absolute:  # a request every half idle period
        at += sessions.idle / 2
        assert auth.session(busy, now=at) is not None, at
    assert auth.session(busy, now=T0 + sessions.absolute + dt.timedelta(seconds=1)) is None


def test_wrong_unknown_and_disabled_are_the_same_refusal(auth):
    assert login(auth, password="wrong password!").result is LoginResult.refused
    assert login(auth, name="nobody").result is LoginResult.refused
    assert login(auth, password="x" * 10_000).result is LoginResult.refused  # never hashed
    session_id = login(auth, name="qc.li").session_id
    assert auth.store.disable_user("qc.li", now=T0) == 1
    assert auth.session(session_id, now=T0) is None  # disabling ended it
    refused = login(auth, name="qc.li")
    assert refused.result is LoginResult.refused and refused.session_id is None


def test_repeated_failures_lock_the_account_even_with_the_right_password(auth):
    throttle = auth.config.throttle
    at = T0
    for _ in range(throttle.account_failures):
        at += dt.timedelta(seconds=10)
        assert login(auth, password="wrong password!", at=at).result is LoginResult.refused
    locked = login(auth, at=at + dt.timedelta(seconds=1))
    assert locked.result is LoginResult.locked and locked.session_id is None
    assert dt.timedelta(0) < locked.retry_after <= throttle.lock
    # another account from another address is not locked by it
    assert login(auth, name="qc.li", address="10.0.0.2", at=at).result is LoginResult.ok
    # locked attempts do not extend the lock: it ends lock_minutes after the last failure
    assert login(auth, at=at + throttle.lock - dt.timedelta(seconds=1)).result is LoginResult.locked
    assert login(auth, at=at + throttle.lock + dt.timedelta(seconds=1)).result is LoginResult.ok


def test_one_address_guessing_across_accounts_is_locked(auth):
    throttle = auth.config.throttle  # contracts/portal.yaml's number of guesses
    at = T0
    for i in range(throttle.address_failures):
        at += dt.timedelta(seconds=1)
        login(auth, name=f"guess{i}", password="wrong password!", at=at)
    assert login(auth, at=at).result is LoginResult.locked
    assert login(auth, address="10.0.0.9", at=at).result is LoginResult.ok


def test_failures_older_than_the_window_are_forgotten(auth):
    throttle = auth.config.throttle
    for i in range(throttle.account_failures - 1):
        login(auth, password="wrong password!", at=T0 + dt.timedelta(seconds=i))
    after = T0 + throttle.window + dt.timedelta(minutes=1)
    login(auth, password="wrong password!", at=after)
    assert login(auth, at=after).result is LoginResult.ok
