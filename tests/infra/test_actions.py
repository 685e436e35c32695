"""The portal's action queue on a real scored sample city in the session's chDB: actions are
applied once (also after a crash between the warehouse write and the file move), in
submission order, judged at the time they were submitted; refused ones keep their reason;
`hqlake apply --if-idle` exits 0 while another process holds the home; the score stage
applies what is pending first; the snapshot is published again after applying."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from contracts.timezone import TZ
from tests.expectations.publish.test_snapshot import DATES, MONTH, OFFICER, build_scored_city

pytestmark = pytest.mark.integration

D = DATES[0]
IN_WINDOW = dt.datetime.combine(D + dt.timedelta(days=2), dt.time(9), TZ)  # day 2 of 10
CLOSED = dt.datetime.combine(D + dt.timedelta(days=11), dt.time(9), TZ)  # after the 10 days


@pytest.fixture(scope="module")
def city(config, seaweed, tmp_path_factory):
    from infra.settings import settings

    with pytest.MonkeyPatch.context() as mp:
        try:
            yield build_scored_city(
                config, seaweed, tmp_path_factory.mktemp("actcity"), mp, loop=False
            )
        finally:
            settings.cache_clear()


@pytest.fixture
def queue(city, config):
    """An empty action queue and snapshot folder under the session's home, removed after
    the test (a pending action left there would be applied by a later test's score stage)."""
    for folder in (config.actions_dir, config.snapshot_dir):
        shutil.rmtree(folder, ignore_errors=True)
    yield config
    for folder in (config.actions_dir, config.snapshot_dir):
        shutil.rmtree(folder, ignore_errors=True)


def _failed(ch, day, skip=()):
    """(org_code, dataset, rule_id) failed results of `day`, most points lost first."""
    from expectations.scoring.read import read_explanation, read_scores

    lines = []
    for s in read_scores(ch, day):
        for line in read_explanation(ch, s["org_code"], day):
            if line["status"] == "failed" and line["cause"] == "failed" and line["points"]:
                lines.append((line["points"], s["org_code"], line["dataset"], line["rule_id"]))
    return [(o, d, r) for _, o, d, r in sorted(lines, reverse=True) if (o, d, r) not in skip]


def _appeal(org, dataset, rule, day=D, reason="编码映射未同步"):
    return {"org_code": org, "date": day.isoformat(), "dataset": dataset, "rule_id": rule,
            "reason": reason}  # fmt: skip


def test_enqueue_checks_the_payload_and_writes_owner_only_files(queue):
    from infra.actions import ActionRefused, actions, enqueue

    folder = queue.actions_dir
    with pytest.raises(ActionRefused, match="not an action"):
        enqueue(folder, "drop_table", {}, by="x", role="city", scope="")
    with pytest.raises(ActionRefused, match="reason"):
        enqueue(folder, "appeal_submit", _appeal("A", "d", "r", reason=""), by="x",
                role="org", scope="A")  # fmt: skip
    with pytest.raises(ActionRefused, match="reason"):
        enqueue(folder, "appeal_submit", _appeal("A", "d", "r", reason="x" * 5000), by="x",
                role="org", scope="A")  # fmt: skip
    with pytest.raises(ActionRefused, match="date"):
        enqueue(folder, "appeal_submit", _appeal("A", "d", "r") | {"date": "2026-13-01"},
                by="x", role="org", scope="A")  # fmt: skip
    with pytest.raises(ActionRefused, match="decision"):
        enqueue(folder, "appeal_decide", {"appeal_id": "ap-1", "decision": "maybe",
                "comment": "c"}, by=OFFICER, role="city", scope="")  # fmt: skip
    with pytest.raises(ActionRefused, match="by: Extra inputs are not permitted"):
        enqueue(folder, "acceptance_sign", {"month": "2026-11", "by": "someone else"},
                by=OFFICER, role="city", scope="")  # fmt: skip
    with pytest.raises(ActionRefused, match="role"):
        enqueue(folder, "acceptance_sign", {"month": "2026-11"}, by=OFFICER, role="root",
                scope="")  # fmt: skip
    assert actions(folder) == []
    action_id = enqueue(folder, "acceptance_sign", {"month": "2026-11"}, by=OFFICER,
                        role="city", scope="", now=IN_WINDOW)  # fmt: skip
    path = folder / "pending" / f"{action_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    record = json.loads(path.read_text())
    assert dt.datetime.fromisoformat(record["submitted_at"]) == IN_WINDOW
    assert record["submitted_at"].endswith("+00:00")  # UTC
    [listed] = actions(folder)
    assert (listed["id"], listed["state"], listed["submitted_at"]) == (
        action_id,
        "pending",
        IN_WINDOW,
    )
    assert [p.name for p in folder.rglob("*.tmp")] == []


def test_actions_submitted_in_one_millisecond_keep_their_order(tmp_path):
    """A second action submitted in the millisecond of the first (a double click, a script,
    the portal) gets the next millisecond: it is applied after the first, not in the order
    of the ids' random suffixes (CI once applied a second reopening before the first)."""
    from infra.actions import actions, enqueue

    reopen = {"month": "2026-11", "reason": "r"}
    ids = [enqueue(tmp_path, "acceptance_reopen", reopen, by=OFFICER, role="city", scope="",
                   now=IN_WINDOW) for _ in range(20)]  # fmt: skip
    listed = actions(tmp_path)[::-1]  # oldest first: the order apply_pending takes
    assert [a["id"] for a in listed] == ids
    assert [a["submitted_at"] for a in listed] == [
        IN_WINDOW + dt.timedelta(milliseconds=i) for i in range(20)
    ]
    later = enqueue(tmp_path, "acceptance_reopen", reopen, by=OFFICER, role="city", scope="",
                    now=IN_WINDOW + dt.timedelta(seconds=1))  # fmt: skip
    assert actions(tmp_path)[0]["id"] == later  # a free instant is kept as it is
    assert actions(tmp_path)[0]["submitted_at"] == IN_WINDOW + dt.timedelta(seconds=1)


def test_an_appeal_is_applied_once_at_its_submitted_time(city, queue):
    from expectations.programme.appeals import list_appeals
    from expectations.publish.snapshot import Snapshot
    from infra.actions import actions, apply_pending, enqueue

    ch = city["ch"]
    org, dataset, rule = _failed(ch, D)[0]
    folder = queue.actions_dir
    # inside the window when submitted; the window closed long before this test applies it
    assert dt.datetime.now(TZ) > CLOSED
    action_id = enqueue(folder, "appeal_submit", _appeal(org, dataset, rule), by="his.zhou",
                        role="org", scope=org, now=IN_WINDOW)  # fmt: skip
    late_id = enqueue(folder, "appeal_submit", _appeal(org, dataset, rule), by="his.zhou",
                      role="org", scope=org, now=CLOSED)  # fmt: skip
    summary = apply_pending(queue)
    assert summary["applied"] == [action_id] and summary["refused"] == [late_id]
    [appeal] = list_appeals(ch, org_code=org, day=D)
    assert appeal["submitted_at"] == IN_WINDOW and appeal["submitted_by"] == "his.zhou"
    assert appeal["status"] == "open"
    states = {a["id"]: a for a in actions(folder)}
    assert states[action_id]["state"] == "applied"
    assert states[action_id]["result"]["appeal_id"] == appeal["appeal_id"]
    assert states[late_id]["state"] == "refused"
    assert f"the window for appeals of {D} closed" in states[late_id]["reason"]
    # published: the portal sees the appeal
    snap = Snapshot.open(queue.snapshot_dir)
    assert snap is not None and snap.generation == summary["generation"]
    assert [a["appeal_id"] for a in snap.appeals(org)] == [appeal["appeal_id"]]

    # applying again applies nothing
    again = apply_pending(queue)
    assert (again["applied"], again["refused"], again["generation"]) == ([], [], None)
    assert len(list_appeals(ch, org_code=org, day=D)) == 1

    # a crash after the warehouse write, before the file moved: the action is pending again
    applied = folder / "applied" / f"{action_id}.json"
    record = json.loads(applied.read_text())
    for key in ("state", "applied_at", "result"):
        record.pop(key)
    (folder / "pending" / f"{action_id}.json").write_text(json.dumps(record))
    applied.unlink()
    recovered = apply_pending(queue)
    assert recovered["recovered"] == [action_id] and recovered["applied"] == []
    assert len(list_appeals(ch, org_code=org, day=D)) == 1
    # a crash between writing the outcome and removing the pending file
    (folder / "pending" / f"{action_id}.json").write_text(json.dumps(record))
    assert apply_pending(queue)["recovered"] == []
    assert not (folder / "pending" / f"{action_id}.json").exists()
    assert len(list_appeals(ch, org_code=org, day=D)) == 1


def test_decisions_waivers_and_signing_through_the_queue(city, queue):
    from expectations.programme.appeals import list_appeals, list_waivers
    from expectations.publish.snapshot import Snapshot
    from expectations.scoring.read import read_scores
    from infra.actions import actions, apply_pending, enqueue

    ch = city["ch"]
    folder = queue.actions_dir
    taken = {(a["org_code"], a["dataset"], a["rule_id"]) for a in list_appeals(ch)}
    org, dataset, rule = _failed(ch, D, taken)[0]
    submit = enqueue(folder, "appeal_submit", _appeal(org, dataset, rule), by="his.li",
                     role="org", scope=org, now=IN_WINDOW)  # fmt: skip
    other = next(o for o in city["registry"].organisations if o != org)
    foreign = enqueue(folder, "appeal_submit", _appeal(org, dataset, rule), by="his.li",
                      role="org", scope=other, now=IN_WINDOW)  # fmt: skip
    apply_pending(queue)
    states = {a["id"]: a for a in actions(folder)}
    assert states[submit]["state"] == "applied"
    assert states[foreign]["state"] == "refused"
    assert "may appeal only its own organisation's results" in states[foreign]["reason"]
    appeal_id = states[submit]["result"]["appeal_id"]
    before = {r["org_code"]: r for r in read_scores(ch, D)}[org]

    later = IN_WINDOW + dt.timedelta(hours=3)
    by_org = enqueue(folder, "appeal_decide", {"appeal_id": appeal_id, "decision": "approved",
                     "comment": "ok"}, by="his.li", role="org", scope=org, now=later)  # fmt: skip
    decide = enqueue(folder, "appeal_decide", {"appeal_id": appeal_id, "decision": "approved",
                     "comment": "核实无误"}, by=OFFICER, role="city", scope="",
                     now=later + dt.timedelta(minutes=1))  # fmt: skip
    waive = enqueue(folder, "waiver_add", {"rule": "required", "start": DATES[1].isoformat(),
                    "reason": "HIS outage", "peer_group": "secondary"}, by=OFFICER,
                    role="city", scope="", now=later)  # fmt: skip
    not_officer = enqueue(folder, "acceptance_sign", {"month": f"{MONTH:%Y-%m}"},
                          by="somebody", role="city", scope="", now=later)  # fmt: skip
    sign = enqueue(folder, "acceptance_sign", {"month": f"{MONTH:%Y-%m}"}, by=OFFICER,
                   role="city", scope="", now=later + dt.timedelta(minutes=2))  # fmt: skip
    summary = apply_pending(queue)
    states = {a["id"]: a for a in actions(folder)}
    assert summary["applied"] == [waive, decide, sign]  # submission order
    assert states[by_org]["state"] == states[not_officer]["state"] == "refused"
    assert "his.li (org user) may not decide appeals" in states[by_org]["reason"]
    assert "somebody" in states[not_officer]["reason"]
    [decided] = list_appeals(ch, appeal_id=appeal_id)
    assert decided["status"] == "approved" and decided["decided_at"] == later + dt.timedelta(
        minutes=1
    )
    assert str(D) in summary["dates"] and str(DATES[1]) in summary["dates"]
    assert len(list_waivers(ch)) == 1
    after = {r["org_code"]: r for r in read_scores(ch, D)}[org]
    assert after["rules_waived"] == before["rules_waived"] + 1
    assert after["composite"] >= before["composite"]
    snap = Snapshot.open(queue.snapshot_dir)
    assert snap.scores(D) == read_scores(ch, D)  # published again after the re-scoring
    assert snap.score(org, D)["composite"] == after["composite"]
    signed = snap.signature(MONTH)
    assert signed is not None and states[sign]["result"]["version"] == signed.version
    assert snap.acceptance_sheet(MONTH, signed.version) is not None

    reopen = enqueue(folder, "acceptance_reopen", {"month": f"{MONTH:%Y-%m}",
                     "reason": "a late correction"}, by=OFFICER, role="city", scope="")  # fmt: skip
    twice = enqueue(folder, "acceptance_reopen", {"month": f"{MONTH:%Y-%m}",
                    "reason": "again"}, by="qc.li", role="city", scope="")  # fmt: skip
    apply_pending(queue)
    states = {a["id"]: a for a in actions(folder)}
    assert states[reopen]["state"] == "applied" and states[twice]["state"] == "refused"
    assert states[twice]["reason"]
    assert Snapshot.open(queue.snapshot_dir).signature(MONTH).reopening is not None


def _hqlake(*args, home):
    env = os.environ | {"HQLAKE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_apply_if_idle_exits_at_once_while_the_home_is_held(city, queue):
    from infra.actions import actions, enqueue, kick

    # this test process holds the home (its chDB): like a daily run for the portal's kick
    folder = queue.actions_dir
    action_id = enqueue(folder, "acceptance_sign", {"month": f"{MONTH:%Y-%m}"}, by=OFFICER,
                        role="city", scope="")  # fmt: skip
    idle = _hqlake("apply", "--if-idle", home=queue.home)
    assert idle.returncode == 0, idle.stderr
    assert "the home is busy: 1 actions wait" in idle.stdout
    held = _hqlake("apply", home=queue.home)
    assert held.returncode == 2
    assert "another hqlake process" in held.stderr and "Traceback" not in held.stderr
    assert len(held.stderr.strip().splitlines()) <= 2
    process = kick(queue)
    assert process is not None and process.wait(timeout=120) == 0
    assert "the home is busy" in (folder / "apply.log").read_text()
    assert [a["state"] for a in actions(folder) if a["id"] == action_id] == ["pending"]


def test_the_score_stage_applies_pending_actions_first(city, queue):
    from expectations.programme.appeals import list_appeals
    from infra import pipeline
    from infra.actions import actions, enqueue

    ch = city["ch"]
    taken = {(a["org_code"], a["dataset"], a["rule_id"]) for a in list_appeals(ch)}
    org, dataset, rule = _failed(ch, D, taken)[0]
    action_id = enqueue(queue.actions_dir, "appeal_submit", _appeal(org, dataset, rule),
                        by="his.wu", role="org", scope=org, now=IN_WINDOW)  # fmt: skip
    with pipeline.session(city["rt"]):
        summary = pipeline.score_stage(DATES[1])
    assert summary["actions"]["applied"] == 1
    assert [a["state"] for a in actions(queue.actions_dir) if a["id"] == action_id] == ["applied"]
    assert any(a["submitted_by"] == "his.wu" for a in list_appeals(ch, org_code=org))
