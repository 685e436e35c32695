"""Passwords, logins, the login throttle and sessions (contracts/portal.yaml's numbers).

- Passwords: Argon2id through argon2-cffi's `PasswordHasher`, at the cost of
  contracts/portal.yaml's `passwords.hashing` (argon2-cffi's defaults); a hash made with
  other parameters is replaced at the next successful login.
- Throttle: `account_failures` failed logins of one account (or `address_failures` from one
  client address) within `window_minutes` lock further logins of that account (or from that
  address) until `lock_minutes` after the last of them, also with the right password (a
  guesser learns nothing from a locked answer).
  A refused locked attempt is not counted again, so a lock always ends.
- A login never says whether the account exists or is disabled: the same refusal as a wrong
  password, after the same hashing work (a dummy hash is verified for an unknown name).
- Sessions: a random 32-byte id, new at every login (a session id planted before the login
  is never promoted: fixation), with its own CSRF token; it ends after `idle_minutes`
  without a request, `absolute_hours` after the login, at logout, or when the account is
  disabled.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from infra.portal.config import PasswordHashing, PortalConfig, load_portal_config
from infra.portal.store import PortalStore, Session, User

SESSION_ID_BYTES = 32
CSRF_TOKEN_BYTES = 32
# Seen-at is written at most this often: a page's parallel requests do not each write.
_TOUCH_EVERY = dt.timedelta(seconds=30)


def password_hasher(cost: PasswordHashing) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
    )


@functools.cache
def _bundled_hasher() -> PasswordHasher:
    return password_hasher(load_portal_config().passwords.hashing)


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """An Argon2id hash of `password` at `hasher`'s cost (default contracts/portal.yaml's)."""
    return (hasher or _bundled_hasher()).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` is the hash's (verified at the cost the hash records)."""
    try:
        return PasswordHasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = CSRF_TOKEN_BYTES) -> str:
    return secrets.token_urlsafe(nbytes)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a token with what a request carried."""
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


class LoginResult(StrEnum):
    ok = "ok"
    refused = "refused"  # wrong name or password, or a disabled account: never told apart
    locked = "locked"  # throttled: too many failures of the account or from the address


@dataclass(frozen=True)
class Login:
    result: LoginResult
    user: User | None = None
    session_id: str | None = None
    retry_after: dt.timedelta | None = None  # when locked


class Authenticator:
    """Logins and sessions over the store, by the configuration's numbers."""

    def __init__(self, store: PortalStore, config: PortalConfig) -> None:
        self.store = store
        self.config = config
        self.hasher = password_hasher(config.passwords.hashing)
        # verified for an unknown name: the same work as an account's hash (made now, so the
        # first refusal of an unknown name costs no more than the others)
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def locked_for(self, account: str, address: str, *, now: dt.datetime) -> dt.timedelta | None:
        """How long logins of `account` or from `address` stay locked, or None: locked when
        the limit of failures fell within one window, until `lock` after the last of them."""
        throttle = self.config.throttle
        since = now - throttle.window - throttle.lock
        waits = []
        for limit, who in (
            (throttle.account_failures, {"account": account}),
            (throttle.address_failures, {"address": address}),
        ):
            times = self.store.recent_failures(since=since, limit=limit, **who)
            within = len(times) == limit and times[0] - times[-1] <= throttle.window
            if within and (until := times[0] + throttle.lock) > now:
                waits.append(until - now)
        return max(waits) if waits else None

    def login(
        self, name: str, password: str, address: str, *, now: dt.datetime, old_session: str | None
    ) -> Login:
        """Judge one login; on success a new session (the old one, if any, is deleted)."""
        self.forget_old(now=now)
        account = name.strip()[:128]
        if (wait := self.locked_for(account, address, now=now)) is not None:
            return Login(LoginResult.locked, retry_after=wait)
        user = self.store.user(account) if account else None
        too_long = len(password) > self.config.passwords.max_chars
        if too_long:
            password = ""  # never hash an unbounded input; the refusal costs the same
        verified = verify_password(user.password_hash if user else self._dummy_hash, password)
        if not verified or too_long or user is None or not user.active:
            self.store.add_attempt(account, address, False, now=now)
            return Login(LoginResult.refused)
        self.store.add_attempt(account, address, True, now=now)
        if self.hasher.check_needs_rehash(user.password_hash):
            self.store.set_password_hash(user.name, hash_password(password, self.hasher))
        if old_session:
            self.store.delete_session(old_session)
        session_id = new_token(SESSION_ID_BYTES)
        self.store.add_session(session_id, user.name, new_token(), now=now)
        return Login(LoginResult.ok, user=user, session_id=session_id)

    def session(self, session_id: str | None, *, now: dt.datetime) -> Session | None:
        """The live session of a cookie's id, or None (unknown, expired, account disabled);
        an expired session is deleted."""
        if not session_id or len(session_id) > 128:
            return None
        found = self.store.session(session_id)
        if found is None:
            return None
        sessions = self.config.sessions
        expired = now - found.seen_at > sessions.idle or now - found.created_at > sessions.absolute
        if expired or not found.user.active:
            self.store.delete_session(session_id)
            return None
        if now - found.seen_at > _TOUCH_EVERY:
            self.store.touch_session(session_id, now=now)
        return found

    def logout(self, session_id: str | None) -> None:
        if session_id:
            self.store.delete_session(session_id)

    def forget_old(self, *, now: dt.datetime) -> None:
        """Delete expired sessions and login attempts older than any window still judged."""
        sessions, throttle = self.config.sessions, self.config.throttle
        self.store.delete_expired_sessions(
            idle_before=now - sessions.idle, created_before=now - sessions.absolute
        )
        self.store.forget_attempts(before=now - throttle.window - throttle.lock)
