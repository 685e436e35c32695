"""Reading the programme's append-only histories (dq.appeal_event, dq.waiver_event) into the
exemptions scoring applies.

An appeal is in force when its latest decision is `approved`; a waiver when it was `added` and
the business date is within its dates, its end being the earliest of its own end and any
`ended` event's end_date. Events are never updated or deleted, so any earlier state can be
read again by passing `as_of` (the events written up to then).
"""

from __future__ import annotations

import datetime as dt

from clickhouse_connect.driver.client import Client

from expectations.scoring.exemptions import Exemptions, Waiver

_FAR = dt.datetime(2300, 1, 1)


def load_exemptions(ch: Client, as_of: dt.datetime | None = None) -> Exemptions:
    """The approved appeals and the waivers in force, from the events written by `as_of`."""
    params = {"as_of": as_of or _FAR}
    appeals = {
        (day, org, dataset, rule_id, version): appeal_id
        for appeal_id, org, day, dataset, rule_id, version in ch.query(
            """
            SELECT appeal_id, any(org_code), any(business_date), any(dataset), any(rule_id),
                   any(batch_version)
            FROM dq.appeal_event
            WHERE at <= {as_of:DateTime64(3)}
            GROUP BY appeal_id
            HAVING argMaxIf(event, at, event IN ('approved', 'rejected')) = 'approved'
            """,
            parameters=params,
        ).result_rows
    }
    waivers = tuple(
        Waiver(waiver_id, rule, start, end, org_code or None, peer_group or None)
        for waiver_id, rule, org_code, peer_group, start, end in ch.query(
            """
            SELECT waiver_id, anyIf(rule, event = 'added'), anyIf(org_code, event = 'added'),
                   anyIf(peer_group, event = 'added'), minIf(start_date, event = 'added'),
                   min(end_date)
            FROM dq.waiver_event
            WHERE at <= {as_of:DateTime64(3)}
            GROUP BY waiver_id
            HAVING countIf(event = 'added') > 0
            ORDER BY waiver_id
            """,
            parameters=params,
        ).result_rows
    )
    return Exemptions(appeals=appeals, waivers=waivers)
