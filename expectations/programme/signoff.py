"""The monthly acceptance sign-off (upload standard section 8, 上传验收): a quality officer signs
a month, which freezes it, and the subsidies of the organisations passing it are computed.

Signing computes the month's acceptance (expectations.scoring.acceptance, with the exemptions
in force) and freezes it as a new version in append-only tables: the acceptance rows with
their evidence (dq.acceptance_signed), the subsidy lines (dq.subsidy_line, see subsidies.py)
and, written last, the signature (dq.acceptance_signature): signer, time, the scoring and
subsidy configurations, every current run of the month with its rule-set fingerprint, and the
appeals and waivers that waived a result of the month. Nothing frozen is ever recomputed:
later corrections (a new validation run), appeals or waivers change dq.acceptance, never a
signed version. A signed month is signed again only after a recorded reopening
(dq.acceptance_reopening: who, when, why); the next signature is version + 1 and every earlier
version is kept. Readers show the latest signed version, and whether it has been reopened.
"""

# SQL text here is formatted from module constants only (column lists, the committed-version
# condition); every value is a bound query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.errors import OperatorError
from contracts.registry import Registry
from expectations.programme.config import AppealsConfig
from expectations.programme.subsidies import SubsidyConfig, subsidy_lines
from expectations.publish.neutralise import one_line
from expectations.scoring.acceptance import acceptance, month_dates
from expectations.scoring.config import PEER_GROUPS, ScoringConfig
from expectations.scoring.exemptions import NO_EXEMPTIONS, Exemptions
from expectations.scoring.inputs import current_runs, result_counts
from expectations.scoring.store import from_millis, next_computed_at

SIGNATURE_COLUMNS = (
    "month",
    "version",
    "signer",
    "signed_at",
    "config_fingerprint",
    "config",
    "subsidy_config",
    "phase",
    "runs",
    "rules_fingerprints",
    "appeal_ids",
    "waiver_ids",
    "organisations",
    "passed",
    "subsidy_yuan",
)
SIGNED_COLUMNS = (
    "month",
    "version",
    "signed_at",
    "org_code",
    "org_name",
    "kind",
    "peer_group",
    "county_code",
    "days_judged",
    "days_at_bar",
    "share",
    "passed",
    "blocking_failures",
    "evidence",
    "computed_at",
)
SUBSIDY_COLUMNS = (
    "month",
    "version",
    "signed_at",
    "org_code",
    "phase",
    "kind",
    "amount_yuan",
    "currency",
    "paid_in",
)
REOPENING_COLUMNS = ("month", "version", "actor", "reason", "at")
_TIMES = ("signed_at", "computed_at", "at")
# The committed versions: a row of a frozen table counts only with its signature, and of a
# version only the first signature counts (two signings racing both read "not signed" and
# both write version N; the later one, its rows and its subsidy lines are never read).
_FIRST = (
    "(SELECT month, version, min(signed_at) AS signed_at FROM dq.acceptance_signature"
    " GROUP BY month, version)"
)
_SIGNED = "(month, version, signed_at) IN (SELECT * FROM {sig})"
_COMMITTED = _SIGNED.format(sig=_FIRST)
_PEER_ORDER = f"indexOf([{', '.join(repr(g) for g in PEER_GROUPS)}], peer_group)"


class SignoffRefused(OperatorError):
    """Signing or reopening a month is not allowed as asked; the message says why and what to
    do instead."""


@dataclass(frozen=True)
class Signature:
    """One signed version of a month: the signature row, its frozen acceptance rows (evidence
    as a dict), its subsidy lines, and the reopening of this version if there is one."""

    signature: dict[str, Any]
    rows: list[dict[str, Any]]
    subsidies: list[dict[str, Any]]
    reopening: dict[str, Any] | None

    @property
    def month(self) -> dt.date:
        return self.signature["month"]

    @property
    def version(self) -> int:
        return self.signature["version"]

    def subsidy_of(self, org_code: str) -> int:
        return sum(s["amount_yuan"] for s in self.subsidies if s["org_code"] == org_code)


def _select(columns: tuple[str, ...]) -> str:
    # Zoned timestamps as epoch milliseconds (the driver would return naive UTC datetimes),
    # under another name: an alias would replace the column in WHERE.
    return ", ".join(
        f"toUnixTimestamp64Milli({c}) AS {c}_ms" if c in _TIMES else c for c in columns
    )


def _rows(ch: Client, columns: tuple[str, ...], table_sql: str, params: dict) -> list[dict]:
    result = ch.query(f"SELECT {_select(columns)} {table_sql}", parameters=params)
    return [
        {c: from_millis(v) if c in _TIMES else v for c, v in zip(columns, r, strict=True)}
        for r in result.result_rows
    ]


def _text(value: str, what: str) -> str:
    text = one_line(value).strip()
    if not text:
        raise SignoffRefused(f"{what} is empty: say who signs or decides (--by) and why (--reason)")
    return text


def _officer(officers: AppealsConfig, person: str, what: str) -> None:
    """Signing and reopening are the quality officer's (section 8), by exact name: a variant
    (case, a look-alike letter, a zero-width space) is someone else."""
    if not officers.may_decide(person):
        raise SignoffRefused(
            f"{person!r} may not {what}: that is the {officers.decisions.role}'s role, held by"
            f" {', '.join(officers.decisions.people)} (contracts/appeals.yaml)"
        )


def versions(ch: Client, month: dt.date) -> list[Signature]:
    """Every signed version of the month of `month`, oldest first."""
    params = {"m": month.replace(day=1)}
    signatures = _rows(
        ch,
        SIGNATURE_COLUMNS,
        f"FROM dq.acceptance_signature WHERE month = {{m:Date}} AND {_COMMITTED} ORDER BY version",
        params,
    )
    frozen = _rows(
        ch,
        SIGNED_COLUMNS,
        f"FROM dq.acceptance_signed WHERE month = {{m:Date}} AND {_COMMITTED}"
        f" ORDER BY version, {_PEER_ORDER}, org_code",
        params,
    )
    lines = _rows(
        ch,
        SUBSIDY_COLUMNS,
        f"FROM dq.subsidy_line WHERE month = {{m:Date}} AND {_COMMITTED}"
        " ORDER BY version, org_code",
        params,
    )
    reopenings = _rows(
        ch,
        REOPENING_COLUMNS,
        "FROM dq.acceptance_reopening WHERE month = {m:Date} ORDER BY at",
        params,
    )
    out = []
    for sig in signatures:
        sig["runs"] = json.loads(sig["runs"])
        rows = [r for r in frozen if r["version"] == sig["version"]]
        for r in rows:
            r["evidence"] = json.loads(r["evidence"])
        out.append(
            Signature(
                signature=sig,
                rows=rows,
                subsidies=[s for s in lines if s["version"] == sig["version"]],
                reopening=next((r for r in reopenings if r["version"] == sig["version"]), None),
            )
        )
    return out


def read_signature(ch: Client, month: dt.date) -> Signature | None:
    """The latest signed version of the month of `month`, None when it was never signed."""
    signed = versions(ch, month)
    return signed[-1] if signed else None


def _paid_elsewhere(
    ch: Client, month: dt.date, phase: str, before: dt.datetime | None = None
) -> dict[str, dt.date]:
    """org_code -> the first other month of `phase` whose latest signed version paid it (of
    those signed before `before`, when given)."""
    latest = (
        "(SELECT month, max(version) AS latest, argMax(signed_at, version) AS latest_at"
        f" FROM {_FIRST} GROUP BY month"
        " HAVING {any_time:Bool} OR latest_at < {before:DateTime64(3)})"
    )
    rows = ch.query(
        f"""
        SELECT org_code, min(month)
        FROM dq.subsidy_line
        WHERE phase = {{phase:String}} AND month != {{m:Date}} AND amount_yuan > 0
          AND {_SIGNED.format(sig=latest)}
        GROUP BY org_code
        """,
        parameters={
            "phase": phase,
            "m": month,
            "any_time": before is None,
            "before": before or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        },
    ).result_rows
    return dict(rows)


def paid_twice(ch: Client, month: dt.date) -> dict[str, dt.date]:
    """org_code -> the other month of the phase, signed before it, that also pays what the
    latest signed version of the month of `month` pays: empty unless two months of a phase
    were signed at the same time (each judged the other unsigned)."""
    latest = read_signature(ch, month)
    if latest is None or not latest.signature["phase"]:
        return {}
    paid = {s["org_code"] for s in latest.subsidies if s["amount_yuan"] > 0}
    earlier = _paid_elsewhere(
        ch, latest.month, latest.signature["phase"], before=latest.signature["signed_at"]
    )
    return {code: m for code, m in sorted(earlier.items()) if code in paid}


def _runs(ch: Client, dates: list[dt.date]) -> list[dict[str, str]]:
    runs = current_runs(ch, dates)
    fingerprints = dict(
        ch.query(
            "SELECT run_id, any(rules_fingerprint) FROM dq.run"
            " WHERE run_id IN {runs:Array(String)} GROUP BY run_id",
            parameters={"runs": sorted(set(runs.values()))},
        ).result_rows
    )
    return [
        {
            "business_date": day.isoformat(),
            "run_id": run,
            "rules_fingerprint": fingerprints.get(run, ""),
        }
        for day, run in sorted(runs.items())
    ]


def _applied(
    ch: Client, registry: Registry, dates: list[dt.date], exemptions: Exemptions
) -> tuple[list[str], list[str]]:
    """(appeal ids, waiver ids) that waive at least one current result of `dates`."""
    if not (exemptions.appeals or exemptions.waivers):
        return [], []
    used = set()
    for r in result_counts(ch, registry, dates, NO_EXEMPTIONS):
        org = registry.get(r.org_code)
        if (reason := exemptions.reason(r, org.peer_group if org else "")) is not None:
            used.add(reason)
    appeals = set(exemptions.appeals.values())
    return sorted(used & appeals), sorted(used - appeals)


def _refusal_if_signed(latest: Signature | None) -> str | None:
    if latest is None or latest.reopening is not None:
        return None
    sig = latest.signature
    return (
        f"{sig['month']:%Y-%m} is signed (version {sig['version']}, by {sig['signer']} at"
        f" {sig['signed_at']:%Y-%m-%d %H:%M}) and a signed month never changes; to sign it"
        " again, reopen it first: --reopen --reason TEXT --by NAME"
    )


def sign_month(
    ch: Client,
    registry: Registry,
    month: dt.date,
    signer: str,
    config: ScoringConfig,
    subsidy_config: SubsidyConfig,
    exemptions: Exemptions = NO_EXEMPTIONS,
    *,
    officers: AppealsConfig,
) -> Signature:
    """Judge the month of `month` now and freeze it as its next signed version, with the
    subsidies due; refused when the signer is not one of `officers`' quality officers, when
    the latest version is signed and not reopened, or when the month has no current
    validation run."""
    first = month.replace(day=1)
    signer = _text(signer, "the signer")
    _officer(officers, signer, "sign the acceptance")
    if refusal := _refusal_if_signed(read_signature(ch, first)):
        raise SignoffRefused(refusal)
    dates = month_dates(first)
    runs = _runs(ch, dates)
    if not runs:
        raise SignoffRefused(
            f"{first:%Y-%m} has no complete validation run: nothing to sign; validate and"
            " score its dates first"
        )
    rows = acceptance(ch, registry, first, config, exemptions)
    previous = versions(ch, first)
    version = (previous[-1].version if previous else 0) + 1
    signed_at = next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(signed_at)) FROM dq.acceptance_signature"
        " WHERE month = {m:Date}",
        {"m": first},
    )
    phase = subsidy_config.phase(first)
    paid = _paid_elsewhere(ch, first, phase.name) if phase else {}
    lines = subsidy_lines(first, rows, registry, subsidy_config, paid)
    appeal_ids, waiver_ids = _applied(ch, registry, dates, exemptions)
    stamp = {"month": first, "version": version, "signed_at": signed_at}
    frozen = []
    for r in rows:
        org = registry.get(r["org_code"])
        frozen.append(
            stamp
            | r
            | {
                "org_name": org.name if org else "",
                "kind": org.kind if org else "",
                "county_code": org.county_code if org else "",
                "evidence": json.dumps(r["evidence"], ensure_ascii=False, sort_keys=True),
            }
        )
    _insert(ch, "dq.acceptance_signed", SIGNED_COLUMNS, frozen)
    _insert(ch, "dq.subsidy_line", SUBSIDY_COLUMNS, [stamp | line for line in lines])
    signature = stamp | {
        "signer": signer,
        "config_fingerprint": config.fingerprint(),
        "config": config.model_dump_json(),
        "subsidy_config": subsidy_config.model_dump_json(),
        "phase": phase.name if phase else "",
        "runs": json.dumps(runs, ensure_ascii=False),
        "rules_fingerprints": sorted({r["rules_fingerprint"] for r in runs}),
        "appeal_ids": appeal_ids,
        "waiver_ids": waiver_ids,
        "organisations": len(rows),
        "passed": sum(r["passed"] for r in rows),
        "subsidy_yuan": sum(line["amount_yuan"] for line in lines),
    }
    _insert(ch, "dq.acceptance_signature", SIGNATURE_COLUMNS, [signature])
    signed = read_signature(ch, first)
    assert signed is not None and signed.version >= version
    if (signed.version, signed.signature["signed_at"]) != (version, signed_at):
        sig = signed.signature
        raise SignoffRefused(
            f"{first:%Y-%m} was signed at the same time by {sig['signer']} (version"
            f" {sig['version']} at {sig['signed_at']:%Y-%m-%d %H:%M:%S}), which counts; this"
            " signing does not"
        )
    if twice := paid_twice(ch, first):
        # another month of the phase was signed meanwhile and pays the same organisations:
        # this version does not stand (reopened, on the record); signing again pays once
        whom = ", ".join(f"{code} ({m:%Y-%m})" for code, m in twice.items())
        reason = f"subsidy already paid by a month signed at the same time: {whom}; sign again"
        reopen_month(ch, first, signer, reason, officers=officers)
        raise SignoffRefused(f"{first:%Y-%m} version {version} reopened: {reason}")
    return signed


def reopen_month(
    ch: Client, month: dt.date, actor: str, reason: str, *, officers: AppealsConfig
) -> dict[str, Any]:
    """Record the decision to reopen the latest signed version of the month of `month`, so
    it may be signed again (as the next version); refused when `actor` is not a quality
    officer, or the month is not signed or already reopened."""
    first = month.replace(day=1)
    actor, reason = _text(actor, "who reopens (--by)"), _text(reason, "the reason (--reason)")
    _officer(officers, actor, "reopen a signed month")
    latest = read_signature(ch, first)
    if latest is None:
        raise SignoffRefused(f"{first:%Y-%m} is not signed: there is nothing to reopen")
    if latest.reopening is not None:
        r = latest.reopening
        raise SignoffRefused(
            f"{first:%Y-%m} version {latest.version} is already reopened (by {r['actor']} at"
            f" {r['at']:%Y-%m-%d %H:%M}); sign it again with --sign --by NAME"
        )
    at = next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(at)) FROM dq.acceptance_reopening"
        " WHERE month = {m:Date}",
        {"m": first},
    )
    row = {"month": first, "version": latest.version, "actor": actor, "reason": reason, "at": at}
    _insert(ch, "dq.acceptance_reopening", REOPENING_COLUMNS, [row])
    return row


def _insert(ch: Client, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    if rows:
        ch.insert(table, [[r[c] for c in columns] for r in rows], column_names=list(columns))
