"""The scoring configuration: contracts/scoring.yaml (dimension weights, ranking decimals,
acceptance bar and share), validated."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import labels
from contracts.loader import CONTRACTS_DIR, load_model
from contracts.registry import LEVELS

DIMENSIONS = tuple(labels.DIMENSIONS)
PEER_GROUPS = tuple(level for levels in LEVELS.values() for level in levels)
SCORING_CONFIG = CONTRACTS_DIR / "scoring.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionWeights(_Strict):
    completeness: float = Field(ge=0, allow_inf_nan=False)
    timeliness: float = Field(ge=0, allow_inf_nan=False)
    correctness: float = Field(ge=0, allow_inf_nan=False)
    logic: float = Field(ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _not_all_zero(self) -> DimensionWeights:
        if not any(getattr(self, d) > 0 for d in DIMENSIONS):
            raise ValueError("at least one dimension weight must be greater than 0")
        return self


class Ranking(_Strict):
    decimals: int = Field(ge=0, le=6)


class Acceptance(_Strict):
    bar: float = Field(ge=0, le=100, allow_inf_nan=False)
    share_pct: float = Field(ge=0, le=100, allow_inf_nan=False)


class ScoringConfig(_Strict):
    dimension_weights: DimensionWeights
    ranking: Ranking
    acceptance: Acceptance

    def weight(self, dimension: str) -> Fraction:
        return Fraction(getattr(self.dimension_weights, dimension))

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def load_scoring_config(path: Path | str | None = None) -> ScoringConfig:
    """The scoring configuration at `path` (default contracts/scoring.yaml), validated."""
    path = Path(path) if path else SCORING_CONFIG
    return load_model(path, ScoringConfig)
