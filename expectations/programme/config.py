"""The appeals configuration: contracts/appeals.yaml (the appeal window, the longest reason
or comment, who may decide), validated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.loader import CONTRACTS_DIR, load_model

APPEALS_CONFIG = CONTRACTS_DIR / "appeals.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    days_after_business_date: int = Field(ge=0, le=366)


class Text(_Strict):
    max_chars: int = Field(ge=1, le=100_000)


class Decisions(_Strict):
    role: str = Field(min_length=1)
    people: tuple[str, ...] = Field(min_length=1)

    @field_validator("people")
    @classmethod
    def _named(cls, people: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in people):
            raise ValueError("every person who may decide needs a name")
        if len(set(people)) != len(people):
            raise ValueError("a person is named twice")
        return people


class AppealsConfig(_Strict):
    window: Window
    text: Text
    decisions: Decisions

    def last_day(self, business_date: dt.date) -> dt.date:
        """The last calendar day an appeal of `business_date`'s results is accepted."""
        return business_date + dt.timedelta(days=self.window.days_after_business_date)

    def may_decide(self, person: str) -> bool:
        return person in self.decisions.people


def load_appeals_config(path: Path | str | None = None) -> AppealsConfig:
    """The appeals configuration at `path` (default contracts/appeals.yaml), validated."""
    return load_model(Path(path) if path else APPEALS_CONFIG, AppealsConfig)
