"""Section 8's appeals and waivers as steps of the platform: the settings' warehouse and
registry, contracts/appeals.yaml and the rule base handed to expectations/programme, and every
affected date scored again after a decision or a waiver change. `hqlake appeal|waiver`
(infra/cli_appeals.py) and the demo call these."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.timezone import TZ


def _services():
    from expectations.programme.config import load_appeals_config
    from infra.pipeline import org_registry
    from infra.runtime import warehouse

    return warehouse(), org_registry(), load_appeals_config()


def _now(now: dt.datetime | None) -> dt.datetime:
    """The time recorded: the real clock. `now` is for tests and replays calling these steps
    from Python; the commands never pass it (a person could backdate an appeal into its
    window or falsify when a decision was taken)."""
    return now or dt.datetime.now(TZ)


def submit_appeal(
    org_code: str,
    day: dt.date,
    dataset: str,
    rule_id: str,
    reason: str,
    by: str,
    *,
    result_org: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record `org_code`'s appeal of its failed result (`result_org`'s, when another's: refused)."""
    from expectations.programme.appeals import ResultRef, submit

    ch, registry, config = _services()
    result = ResultRef(result_org or org_code, day, dataset, rule_id)
    return submit(ch, registry, config, org_code, result, reason, by, _now(now))


def decide_appeal(
    appeal_id: str, decision: str, comment: str, by: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Record a decision (approved or rejected); an approval scores the affected dates again.
    The event written, with `dates_scored_again` and `months_accepted_again`."""
    from expectations.programme.appeals import decide
    from expectations.programme.rescore import NOTHING, rescore

    ch, registry, config = _services()
    row = decide(ch, config, appeal_id, decision, comment, by, _now(now))
    done = NOTHING
    if decision == "approved":
        done = rescore(ch, registry, row["business_date"], row["business_date"])
    return row | done.public()


def list_appeals(**filters: Any) -> list[dict[str, Any]]:
    from expectations.programme.appeals import list_appeals as listed

    ch, _, _ = _services()
    return listed(ch, **filters)


def _rule_names() -> set[str]:
    from expectations.rules.rulebase import rulebase

    rb = rulebase()
    return {r.id for r in rb.rules} | set(rb.types)


def add_waiver(
    rule: str,
    start: dt.date,
    end: dt.date | None,
    reason: str,
    by: str,
    *,
    org_code: str | None = None,
    peer_group: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record a waiver and score the dates it covers (and those looking back at them) again."""
    from expectations.programme.appeals import add_waiver as add
    from expectations.programme.rescore import rescore

    ch, registry, config = _services()
    row = add(
        ch,
        registry,
        config,
        _rule_names(),
        rule,
        start,
        end,
        reason,
        by,
        _now(now),
        org_code=org_code,
        peer_group=peer_group,
    )
    return row | rescore(ch, registry, start, end).public()


def end_waiver(
    waiver_id: str, end: dt.date, reason: str, by: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Record that a waiver ends on `end` and score the dates it no longer covers again."""
    from expectations.programme.appeals import end_waiver as end_it
    from expectations.programme.rescore import rescore

    ch, registry, config = _services()
    row = end_it(ch, config, waiver_id, end, reason, by, _now(now))
    return row | rescore(ch, registry, end + dt.timedelta(days=1), row["was_end"]).public()


def list_waivers(**filters: Any) -> list[dict[str, Any]]:
    from expectations.programme.appeals import list_waivers as listed

    ch, _, _ = _services()
    return listed(ch, **filters)
