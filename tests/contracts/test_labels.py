"""Every label set names exactly the keys the standard uses elsewhere, in the same order."""

from typing import get_args

from contracts import labels
from contracts.registry import LEVELS
from expectations.rules.rulebase import Dimension, Severity, rulebase
from expectations.scoring.config import DimensionWeights


def test_peer_groups_are_the_registry_levels_in_rank_order():
    assert list(labels.PEER_GROUPS) == [level for levels in LEVELS.values() for level in levels]


def test_dimensions_and_severities_are_those_rules_and_weights_use():
    assert list(labels.DIMENSIONS) == list(get_args(Dimension))
    assert list(labels.DIMENSIONS) == list(DimensionWeights.model_fields)
    assert list(labels.SEVERITIES) == list(get_args(Severity))
    rules = rulebase().rules
    assert {r.dimension for r in rules} <= set(labels.DIMENSIONS)
    assert {r.severity for r in rules} <= set(labels.SEVERITIES)


def test_a_label_reads_as_its_two_names():
    assert labels.DIMENSIONS["logic"].both == "逻辑性 Logic"
    zh, en = labels.PEER_GROUPS["county"]
    assert (zh, en) == ("县区公共卫生平台", "County public-health platforms")
