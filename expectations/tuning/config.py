"""The weight-suggestion configuration: contracts/weight_suggestions.yaml (the heuristics'
numbers and the reasons' wording), validated."""

from __future__ import annotations

import string
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.loader import CONTRACTS_DIR, load_model

SUGGESTIONS_CONFIG = CONTRACTS_DIR / "weight_suggestions.yaml"
HEURISTICS = ("not_judged", "never_failed", "widespread", "keeps_rows_out", "separates")
PLACEHOLDERS = frozenset(
    {
        "weight",
        "suggested",
        "orgs_failed",
        "orgs_judged",
        "org_days_failed",
        "org_days_judged",
        "rows_kept_out",
        "rows_pct",
        "indicators",
        "threshold",
        "suggested_threshold",
        "threshold_percentile",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Widespread(_Strict):
    min_organisations: int = Field(ge=1)
    organisations_pct: float = Field(ge=0, le=100)
    org_days_pct: float = Field(ge=0, le=100)
    weight_factor: float = Field(ge=0, le=1)
    threshold_percentile: float = Field(gt=0, le=100)


class KeepsRowsOut(_Strict):
    rows_pct: float = Field(ge=0, le=100)
    min_rows: int = Field(ge=0)
    weight_factor: float = Field(ge=1)


class WeightBounds(_Strict):
    min: float = Field(ge=0)
    max: float = Field(gt=0)
    decimals: int = Field(ge=0, le=6)

    @model_validator(mode="after")
    def _ordered(self) -> WeightBounds:
        if self.min > self.max:
            raise ValueError("min must not be greater than max")
        return self


class Reason(_Strict):
    zh: str
    en: str

    @model_validator(mode="after")
    def _known_placeholders(self) -> Reason:
        for text in (self.zh, self.en):
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            if unknown := names - PLACEHOLDERS:
                raise ValueError(f"unknown placeholders {sorted(unknown)}")
        return self


class Reasons(_Strict):
    not_judged: Reason
    never_failed: Reason
    widespread: Reason
    threshold: Reason
    keeps_rows_out: Reason
    separates: Reason


class SuggestionConfig(_Strict):
    widespread: Widespread
    keeps_rows_out: KeepsRowsOut
    weight: WeightBounds
    reasons: Reasons


def load_suggestion_config(path: Path | str | None = None) -> SuggestionConfig:
    """The configuration at `path` (default contracts/weight_suggestions.yaml), validated."""
    path = Path(path) if path else SUGGESTIONS_CONFIG
    return load_model(path, SuggestionConfig)
