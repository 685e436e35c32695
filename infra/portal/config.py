"""The portal's policies: contracts/portal.yaml (session timeouts, login throttle, password
lengths, request size, snapshot files kept parsed), validated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.loader import CONTRACTS_DIR, load_model

PORTAL_CONFIG = CONTRACTS_DIR / "portal.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sessions(_Strict):
    idle_minutes: int = Field(ge=1, le=24 * 60)
    absolute_hours: int = Field(ge=1, le=24 * 30)

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.idle_minutes)

    @property
    def absolute(self) -> dt.timedelta:
        return dt.timedelta(hours=self.absolute_hours)

    @model_validator(mode="after")
    def _idle_within_absolute(self) -> Sessions:
        if self.idle > self.absolute:
            raise ValueError("idle_minutes must not be longer than absolute_hours")
        return self


class Throttle(_Strict):
    window_minutes: int = Field(ge=1, le=24 * 60)
    account_failures: int = Field(ge=1, le=1000)
    address_failures: int = Field(ge=1, le=10_000)
    lock_minutes: int = Field(ge=1, le=24 * 60)

    @property
    def window(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.window_minutes)

    @property
    def lock(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.lock_minutes)


class PasswordHashing(_Strict):
    """Argon2id's cost (argon2-cffi's names: time_cost, memory_cost in KiB, parallelism)."""

    time_cost: int = Field(ge=1, le=100)
    memory_kib: int = Field(ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _memory_per_lane(self) -> PasswordHashing:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib must be at least 8 KiB per lane (parallelism)")
        return self


# The least Argon2id cost a portal may run with: OWASP's password storage cheat sheet's
# minimum for Argon2id (19 MiB, 2 passes, 1 lane). PasswordHashing itself allows less, for
# tests of logins that are not tests of the hash's cost; a contract file never does.
ARGON2_FLOOR_MEMORY_KIB = 19 * 1024
ARGON2_FLOOR_TIME_COST = 2


class Passwords(_Strict):
    min_chars: int = Field(ge=8, le=128)
    max_chars: int = Field(ge=16, le=4096)
    hashing: PasswordHashing

    @model_validator(mode="after")
    def _ordered(self) -> Passwords:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must not be more than max_chars")
        if (
            self.hashing.memory_kib < ARGON2_FLOOR_MEMORY_KIB
            or self.hashing.time_cost < ARGON2_FLOOR_TIME_COST
        ):
            raise ValueError(
                f"hashing is weaker than Argon2id's minimum (memory_kib ≥ "
                f"{ARGON2_FLOOR_MEMORY_KIB}, time_cost ≥ {ARGON2_FLOOR_TIME_COST})"
            )
        return self


class Requests(_Strict):
    max_body_kib: int = Field(ge=16, le=64 * 1024)


class SnapshotReads(_Strict):
    cache_files: int = Field(ge=1, le=100_000)


class PortalConfig(_Strict):
    sessions: Sessions
    throttle: Throttle
    passwords: Passwords
    requests: Requests
    snapshot: SnapshotReads


def load_portal_config(path: Path | str | None = None) -> PortalConfig:
    """The portal configuration at `path` (default contracts/portal.yaml), validated."""
    return load_model(Path(path) if path else PORTAL_CONFIG, PortalConfig)
