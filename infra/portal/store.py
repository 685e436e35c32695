"""The portal's own state in SQLite: accounts, sessions, login attempts and the audit trail.

One file, `Settings.portal_dir/portal.sqlite3`, in an owner-only folder (0700) and itself
0600 from its first byte (SQLite gives its -wal and -shm files the database's mode). WAL lets
the page threads read while one writes; every call opens its own short connection (sqlite3
connections are not shared across the server's threads) with a busy timeout, so a writer
never fails a reader. The tables' DDL is `infra/schema.py::PORTAL_TABLES`.

A session is stored by the SHA-256 of its id: the cookie's value is never in the file.
Times are UTC (`now=` in every writer, so tests and the throttle judge at a given time).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra.home import private_dir
from infra.schema import PORTAL_TABLES

STORE_FILE = "portal.sqlite3"
_BUSY_MS = 5000


@dataclass(frozen=True)
class User:
    name: str
    role: str
    scope: str
    password_hash: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    created_at: dt.datetime
    seen_at: dt.datetime


def _iso(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("portal times are UTC-aware datetimes")
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def session_key(session_id: str) -> str:
    """What the store keeps of a session id (the cookie's value)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class PortalStore:
    """The portal's SQLite file; `open` creates it (owner-only) and its tables."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, portal_dir: Path) -> PortalStore:
        private_dir(portal_dir)
        path = portal_dir / STORE_FILE
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        if path.is_symlink() or not path.is_file():
            raise PermissionError(f"{path} must be a regular file (not a link)")
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        store = cls(path)
        db = sqlite3.connect(path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once, outside a transaction
        finally:
            db.close()
        with store._connect() as db:
            for statement in PORTAL_TABLES:
                db.execute(statement)
        return store

    @contextlib.contextmanager
    def _connect(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: a writer takes the write lock at once (IMMEDIATE, so two writers
        never deadlock upgrading), a reader reads a consistent WAL snapshot beside it."""
        db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # ---- accounts -------------------------------------------------------------------------

    def add_user(
        self, name: str, role: str, scope: str, password_hash: str, *, now: dt.datetime
    ) -> User:
        """A new account; a name already taken raises `sqlite3.IntegrityError`."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO portal_user (name, role, scope, password_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, role, scope, password_hash, _iso(now)),
            )
        user = self.user(name)
        assert user is not None
        return user

    def user(self, name: str) -> User | None:
        with self._connect(write=False) as db:
            row = db.execute(
                "SELECT name, role, scope, password_hash, created_at, disabled_at"
                " FROM portal_user WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        with self._connect(write=False) as db:
            rows = db.execute(
                "SELECT name, role, scope, password_hash, created_at, disabled_at"
                " FROM portal_user ORDER BY name"
            ).fetchall()
        return [_user(r) for r in rows]

    def set_password_hash(self, name: str, password_hash: str) -> None:
        """A rehash at login (the hasher's parameters were raised)."""
        with self._connect() as db:
            db.execute(
                "UPDATE portal_user SET password_hash = ? WHERE name = ?", (password_hash, name)
            )

    def disable_user(self, name: str, *, now: dt.datetime) -> int:
        """Disable the account and end its sessions; the number of sessions ended."""
        with self._connect() as db:
            db.execute(
                "UPDATE portal_user SET disabled_at = coalesce(disabled_at, ?) WHERE name = ?",
                (_iso(now), name),
            )
            return db.execute("DELETE FROM portal_session WHERE user_name = ?", (name,)).rowcount

    # ---- sessions -------------------------------------------------------------------------

    def add_session(
        self, session_id: str, user_name: str, csrf_token: str, *, now: dt.datetime
    ) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO portal_session (id_hash, user_name, csrf_token, created_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_key(session_id), user_name, csrf_token, _iso(now), _iso(now)),
            )

    def session(self, session_id: str) -> Session | None:
        with self._connect(write=False) as db:
            row = db.execute(
                "SELECT u.name, u.role, u.scope, u.password_hash, u.created_at, u.disabled_at,"
                " s.csrf_token, s.created_at, s.seen_at"
                " FROM portal_session AS s JOIN portal_user AS u ON u.name = s.user_name"
                " WHERE s.id_hash = ?",
                (session_key(session_id),),
            ).fetchone()
        if row is None:
            return None
        return Session(_user(row[:6]), row[6], _time(row[7]), _time(row[8]))

    def touch_session(self, session_id: str, *, now: dt.datetime) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE portal_session SET seen_at = ? WHERE id_hash = ?",
                (_iso(now), session_key(session_id)),
            )

    def delete_session(self, session_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM portal_session WHERE id_hash = ?", (session_key(session_id),))

    def delete_expired_sessions(self, *, idle_before: dt.datetime, created_before: dt.datetime):
        with self._connect() as db:
            return db.execute(
                "DELETE FROM portal_session WHERE seen_at < ? OR created_at < ?",
                (_iso(idle_before), _iso(created_before)),
            ).rowcount

    def session_count(self, user_name: str) -> int:
        with self._connect(write=False) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM portal_session WHERE user_name = ?", (user_name,)
            ).fetchone()
        return count

    # ---- login attempts -------------------------------------------------------------------

    def add_attempt(self, account: str, address: str, succeeded: bool, *, now: dt.datetime):
        with self._connect() as db:
            db.execute(
                "INSERT INTO portal_login_attempt (at, account, address, succeeded)"
                " VALUES (?, ?, ?, ?)",
                (_iso(now), account, address, int(succeeded)),
            )

    def recent_failures(
        self,
        *,
        since: dt.datetime,
        limit: int,
        account: str | None = None,
        address: str | None = None,
    ) -> list[dt.datetime]:
        """The times of the latest `limit` failed logins since `since` of one account or
        from one address, newest first."""
        column, value = ("account", account) if account is not None else ("address", address)
        with self._connect(write=False) as db:
            rows = db.execute(
                "SELECT at FROM portal_login_attempt"  # noqa: S608 (a column name)
                f" WHERE {column} = ? AND at >= ? AND succeeded = 0 ORDER BY at DESC LIMIT ?",
                (value, _iso(since), limit),
            ).fetchall()
        return [_time(at) for (at,) in rows]

    def forget_attempts(self, *, before: dt.datetime) -> int:
        with self._connect() as db:
            return db.execute(
                "DELETE FROM portal_login_attempt WHERE at < ?", (_iso(before),)
            ).rowcount

    # ---- audit ----------------------------------------------------------------------------

    def add_audit(
        self,
        *,
        user_name: str,
        role: str,
        address: str,
        action: str,
        target: str,
        outcome: str,
        now: dt.datetime,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO portal_audit (at, user_name, role, address, action, target, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_iso(now), user_name, role, address, action, target, outcome),
            )

    def audit_rows(self, *, limit: int = 1000) -> list[dict]:
        """The latest audit rows, newest first."""
        with self._connect(write=False) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT seq, at, user_name, role, address, action, target, outcome"
                " FROM portal_audit ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(r) for r in rows]


def _user(row) -> User:
    return User(row[0], row[1], row[2], row[3], _time(row[4]), _time(row[5]))
