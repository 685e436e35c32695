"""Which code runs a rule type: the engines that `engine` in contracts/rules.yaml names.

Each engine dispatches from one table keyed by rule type; adding a rule type is an entry in
rules.yaml that names its engine plus one function registered in that engine's table.

| engine       | table                      | runs                                             |
|--------------|----------------------------|--------------------------------------------------|
| `row_sql`    | `sqlrules.ROW_RULES`       | field/record rules, one ClickHouse pass a dataset |
| `cross_sql`  | `crossrules.CROSS_RULES`   | cross-dataset rules, one ClickHouse query a rule  |
| `level_sql`  | `levelshift.LEVEL_RULES`   | money level shifts against history or peers (7.3) |
| `monitoring` | `monitoring.BATCH_RULES`   | per expected batch, from what ingestion committed |
| `org_day`    | `monitoring.ORG_DAY_RULES` | per organisation and business date                |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.loader import ContractError
from expectations.engines import crossrules, levelshift, monitoring, sqlrules

if TYPE_CHECKING:
    from expectations.rules.rulebase import RuleType

ENGINES: Mapping[str, Mapping[str, object]] = {
    "row_sql": sqlrules.ROW_RULES,
    "cross_sql": crossrules.CROSS_RULES,
    "level_sql": levelshift.LEVEL_RULES,
    "monitoring": monitoring.BATCH_RULES,
    "org_day": monitoring.ORG_DAY_RULES,
}


def check_engines(types: Mapping[str, RuleType], path: Path) -> None:
    """Every rule type names a known engine that implements it, and no other engine does."""
    for name, rule_type in types.items():
        table = ENGINES.get(rule_type.engine)
        if table is None:
            raise ContractError(
                f"{path}: rule type {name!r}: unknown engine {rule_type.engine!r};"
                f" known: {sorted(ENGINES)}"
            )
        if name not in table:
            raise ContractError(
                f"{path}: rule type {name!r}: engine {rule_type.engine!r} has no implementation"
                f" for it (register a function in its table, see expectations/engines/registry.py)"
            )
        others = sorted(e for e, t in ENGINES.items() if e != rule_type.engine and name in t)
        if others:
            raise ContractError(
                f"{path}: rule type {name!r}: names engine {rule_type.engine!r}"
                f" but {others} implement it"
            )
