"""The acceptance subsidies: contracts/subsidies.yaml (programme phases, whole yuan per
organisation kind), validated, and the pure rule of who is paid in a signed month.

An organisation passing a signed month is paid its kind's amount once per phase: on the first
signed month of the phase it passes. Another signed month of the same phase that already paid
it (its latest signed version) makes the amount 0 now, with that month named. Amounts are
integers (yuan): never a float.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from contracts.loader import CONTRACTS_DIR, load_model
from contracts.registry import LEVELS, Registry

SUBSIDY_CONFIG = CONTRACTS_DIR / "subsidies.yaml"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Strict):
    name: str = Field(min_length=1)
    first_month: dt.date
    last_month: dt.date

    @field_validator("first_month", "last_month", mode="before")
    @classmethod
    def _month(cls, value: Any) -> dt.date:
        if not isinstance(value, str) or not _MONTH.fullmatch(value):
            raise ValueError(f"{value!r} is not a month 'YYYY-MM'")
        return dt.date.fromisoformat(f"{value}-01")

    @model_validator(mode="after")
    def _ordered(self) -> Phase:
        if self.last_month < self.first_month:
            raise ValueError("last_month is before first_month")
        return self

    def holds(self, month: dt.date) -> bool:
        return self.first_month <= month.replace(day=1) <= self.last_month


class SubsidyConfig(_Strict):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    phases: tuple[Phase, ...] = Field(min_length=1)
    amount_yuan: dict[str, StrictInt]

    @field_validator("amount_yuan")
    @classmethod
    def _every_kind(cls, amounts: dict[str, int]) -> dict[str, int]:
        if set(amounts) != set(LEVELS):
            raise ValueError(
                f"needs exactly the organisation kinds {sorted(LEVELS)}, has {sorted(amounts)}"
            )
        if any(v < 0 for v in amounts.values()):
            raise ValueError("an amount cannot be negative")
        return amounts

    @model_validator(mode="after")
    def _phases_apart(self) -> SubsidyConfig:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique")
        ordered = sorted(self.phases, key=lambda p: p.first_month)
        for before, after in pairwise(ordered):
            if after.first_month <= before.last_month:
                raise ValueError(f"phases {before.name!r} and {after.name!r} overlap")
        return self

    def phase(self, month: dt.date) -> Phase | None:
        """The phase holding `month` (any date of it), None outside every phase."""
        return next((p for p in self.phases if p.holds(month)), None)


def load_subsidy_config(path: Path | str | None = None) -> SubsidyConfig:
    """The subsidy configuration at `path` (default contracts/subsidies.yaml), validated."""
    return load_model(Path(path) if path else SUBSIDY_CONFIG, SubsidyConfig)


def subsidy_lines(
    month: dt.date,
    acceptance_rows: Iterable[Mapping[str, Any]],
    registry: Registry,
    config: SubsidyConfig,
    paid: Mapping[str, dt.date],
) -> list[dict[str, Any]]:
    """One line per organisation passing `month` in a phase: its kind's amount, or 0 with
    `paid_in` when `paid` (org_code -> another signed month of the phase that paid it) names
    one. Nothing outside every phase."""
    phase = config.phase(month)
    if phase is None:
        return []
    lines = []
    for row in acceptance_rows:
        if not row["passed"]:
            continue
        org = registry.get(row["org_code"])
        kind = org.kind if org else ""
        earlier = paid.get(row["org_code"])
        lines.append(
            {
                "org_code": row["org_code"],
                "phase": phase.name,
                "kind": kind,
                "amount_yuan": 0 if earlier or not org else config.amount_yuan[kind],
                "currency": config.currency,
                "paid_in": earlier,
            }
        )
    return lines
