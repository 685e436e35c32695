"""Row volumes of the sample city judged as validation judges them (volume_not_collapsed and
volume_not_spiked).

A small hospital at a small scale has a handful of encounters a day; lab results and
prescription items come in clusters per encounter, so such a day can fall to a few rows by
chance. The volume rule would rightly call that a collapse, so the generator

* draws an organisation-day again when the rule would fail on one of its datasets (a
  normal day never looks collapsed; only the injected `volume_collapse` does), and
* lists in the ground truth exactly the batches the rule fails on the rows as they will be
  received (an injected collapse where it can be judged, and whatever else the rule would
  still fail, with the reason), so ground truth and validation can be compared one to one.

The rule itself (comparable working or rest days, modified z-score, parameters from
contracts/rules.yaml) is imported from expectations.engines.monitoring, not re-implemented.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
# Attempts at drawing an organisation-day the volume rule accepts; then the best one is kept
# (and what the rule still fails is listed). About 1-2 % of small organisation-days need more
# than one draw; a volume that declines for a reason (a pool of candidates running out)
# cannot be drawn away.
MAX_DRAWS = 25


class Volumes:
    """Rows each (organisation, dataset) batch is received with, per business date."""

    def __init__(self) -> None:
        from expectations.rules.rulebase import rulebase

        self.params = dict(rulebase().types["volume_not_collapsed"].params)
        self.spike_params = dict(rulebase().types["volume_not_spiked"].params)
        if self.spike_params["window_days"] != self.params["window_days"]:
            raise ValueError("volume_not_spiked and volume_not_collapsed need one window_days")
        self.received: dict[tuple[str, str], dict[dt.date, int]] = defaultdict(dict)

    def history(self, org: str, dataset: str, day: dt.date) -> dict[dt.date, int]:
        start = day - dt.timedelta(days=int(self.params["window_days"]))
        return {d: n for d, n in self.received[(org, dataset)].items() if start <= d < day}

    def record(self, org: str, dataset: str, day: dt.date, rows: int) -> None:
        self.received[(org, dataset)][day] = rows

    def judge(self, org: str, dataset: str, day: dt.date, rows: int) -> tuple[int, int, str]:
        """(checked, failed, note) of the volume rule for a batch of `rows` rows."""
        from expectations.engines.monitoring import volume_check

        return volume_check(rows, day, self.history(org, dataset, day), self.params)

    def judge_spike(self, org: str, dataset: str, day: dt.date, rows: int) -> tuple[int, int, str]:
        """(checked, failed, note) of the volume spike rule (section 7.3); its window is
        the collapse rule's (both read the same history)."""
        from expectations.engines.monitoring import spike_check

        return spike_check(rows, day, self.history(org, dataset, day), self.spike_params)

    def drops(self, org: str, day: dt.date, rows: Mapping[str, int]) -> list[str]:
        """Datasets on which the volume rule (a collapse or a spike) would fail with these
        row counts."""
        return [
            ds
            for ds, n in rows.items()
            if self.judge(org, ds, day, n)[1] or self.judge_spike(org, ds, day, n)[1]
        ]

    def steady(
        self,
        org: str,
        day: dt.date,
        draw: Callable[[int], dict[str, T]],
        height: Callable[[T], int],
        planned: frozenset[str] = frozenset(),
    ) -> dict[str, T]:
        """`draw(attempt)` until the volume rule fails on no dataset (except the `planned`
        ones, whose volume a new draw does not change); attempt 0 is the first draw. When
        every attempt fails somewhere (a volume that declines for a reason, not by chance),
        the draw with the fewest failing datasets is kept."""
        best: tuple[int, dict[str, T]] | None = None
        for attempt in range(MAX_DRAWS):
            frames = draw(attempt)
            rows = {ds: height(f) for ds, f in frames.items() if ds not in planned}
            failing = len(self.drops(org, day, rows))
            if best is None or failing < best[0]:
                best = (failing, frames)
            if not failing:
                break
        assert best is not None
        return best[1]
