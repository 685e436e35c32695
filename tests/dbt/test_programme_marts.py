"""dq_appeal and dq_waiver built by dbt over appeals and waivers recorded by the programme's
writers (no sample city needed): one row per appeal and per waiver, as they stand, with the
history kept in the event tables; their unit tests run with them."""

import datetime as dt

import pytest

from expectations.programme.appeals import add_waiver, decide, end_waiver
from infra import dbtrun
from tests.expectations.programme.test_appeals import (
    CONFIG,
    OFFICER,
    REGISTRY,
    RULES,
    A,
    D,
    _city,
    appeal_a,
    at,
)

pytestmark = pytest.mark.integration


def _rows(ch, sql):
    result = ch.query(sql)
    return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]


def test_appeal_and_waiver_marts_show_the_current_state(rt, monkeypatch):
    ch = rt.ch
    # only the tests of the models built (not those of other models that reference them)
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    _city(ch, dates=(D,))
    approved = appeal_a(ch)
    decide(
        ch, CONFIG, approved["appeal_id"], "approved", "ok", OFFICER, at(D + dt.timedelta(days=3))
    )
    waiver = add_waiver(
        ch,
        REGISTRY,
        CONFIG,
        RULES,
        "required",
        D,
        None,
        "outage",
        OFFICER,
        at(D + dt.timedelta(days=3)),
        peer_group="tertiary",
    )
    end_waiver(ch, CONFIG, waiver["waiver_id"], D, "back", OFFICER, at(D + dt.timedelta(days=4)))
    result = dbtrun.build("+dq_appeal +dq_waiver", registry=REGISTRY)
    assert result.success, [f"{n.name}: {n.message}" for n in result.failures()]
    unit = {n.name for n in result.nodes if n.resource_type == "unit_test" and n.status == "pass"}
    assert {
        "appeals_stand_at_their_latest_decision",
        "waivers_end_at_their_earliest_ending",
    } <= unit
    [appeal] = _rows(ch, "SELECT * FROM dq_marts.dq_appeal")
    assert (
        appeal["appeal_id"],
        appeal["org_code"],
        appeal["appeal_status"],
        appeal["is_waived"],
    ) == (
        approved["appeal_id"],
        A,
        "approved",
        True,
    )
    assert (appeal["decided_by"], appeal["decision_comment"], appeal["events_recorded"]) == (
        OFFICER,
        "ok",
        2,
    )
    assert appeal["org_name"] == REGISTRY.get(A).name and appeal["peer_group"] == "tertiary"
    [w] = _rows(ch, "SELECT * FROM dq_marts.dq_waiver")
    assert (w["waiver_id"], w["waived_rule"], w["peer_group"], w["org_code"]) == (
        waiver["waiver_id"],
        "required",
        "tertiary",
        None,
    )
    assert (w["start_date"], w["end_date"], w["ended_by"], w["end_reason"]) == (
        D,
        D,
        OFFICER,
        "back",
    )
    # the history stays whole in staging: every event
    assert ch.query("SELECT count() FROM staging.stg_dq__appeal_event").result_rows == [(2,)]
    assert ch.query("SELECT count() FROM staging.stg_dq__waiver_event").result_rows == [(2,)]
