"""Great Expectations as the engine of record for row-level rules (DESIGN.md, option D1).

One ClickHouse pass per dataset and business date (`sqlrules.violations_query`) yields a
narrow frame: per raw row that breaks at least one rule, for every rule, the record key where
the row violates the rule and NULL otherwise (rows passing every rule stay in ClickHouse, so
`element_count` is not the batch size). This module validates that frame with ONE GX suite
per dataset: one
`ExpectColumnValuesToBeNull` per rule, its `meta` carrying rule id, dimension, weight and
severity and its `notes` the rule's description (Data Docs render notes, not meta).

GX's fixed cost is milliseconds per expectation per call, so one call per batch would cost
more than the SQL itself (DESIGN.md measured 82 s vs 2.7 s for 1M rows); per-batch counts
and thresholds are therefore taken from the same frame by the caller, and GX's
`unexpected_count` must equal their sum — a mismatch, or an expectation GX could not
evaluate, makes the rule's results `error`, never a silent pass.

Data Docs are a page we publish, and the failing record keys in them are uploaded data. GX
1.24 writes the cells of its "Sampled Unexpected Values" table into the HTML as they are (its
`.j2` templates are not autoescaped; only expectation parameters are escaped, since 1.18.1),
so a key `<script>…` would run in the reader's browser. The frame GX validates therefore holds
the keys HTML-escaped (`html_escaped`): escaping is one-to-one and keeps NULLs, so every count
GX computes is unchanged, and the keys it returns are unescaped again (`Outcome.partial_keys`).
The validation results stored in the GX project hold the escaped form.

`import great_expectations` costs ~6 s and configures noisy loggers: it is imported lazily.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from expectations.rules.rulebase import Rule

PARTIAL_KEYS = 20
_HTML_SPECIAL = ["&", "<", ">", '"', "'"]
_HTML_ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]  # as html.escape(quote=True)


def html_escaped(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell HTML-escaped in one pass (`&` is not escaped twice)."""
    return frame.with_columns(
        pl.col(name).str.replace_many(_HTML_SPECIAL, _HTML_ENTITIES)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


@dataclass(frozen=True)
class Outcome:
    """What GX said about one rule over a whole dataset-day."""

    rule_id: str
    success: bool
    element_count: int
    unexpected_count: int
    partial_keys: list[str]
    error: str | None = None
    expectation: str = ""


def _gx():
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


class GxValidator:
    """One GX context per validation run of a business date.

    With `project_dir`, the context is a file context whose validation results are stored
    there, so `build_docs` can render the run's Data Docs; without, it is ephemeral.
    """

    def __init__(self, business_date: dt.date, project_dir: Path | None = None) -> None:
        gx = self._gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.business_date = business_date
        self.project_dir = project_dir
        if project_dir is not None:
            # One GX project per business date and run: results of earlier runs of the date
            # would otherwise pile up in the Data Docs.
            shutil.rmtree(project_dir, ignore_errors=True)
            project_dir.mkdir(parents=True)
            self.ctx = gx.get_context(mode="file", project_root_dir=str(project_dir))
        else:
            self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.ctx.data_sources.add_pandas("hqlake")

    def validate(self, dataset: str, frame: pl.DataFrame, rules: list[Rule]) -> dict[str, Outcome]:
        """Validate the `r{i}` columns of `frame` for `rules` (in column order)."""
        import pandas as pd

        gx = self._gx
        name = f"{dataset}.{self.business_date.isoformat()}"
        asset = self.source.add_dataframe_asset(name=dataset)
        batch_definition = asset.add_batch_definition_whole_dataframe("business_date")
        # The suite is stored whole, once: `suite.add_expectation` on a stored suite writes
        # (and re-reads) the whole suite per expectation, quadratic in the rules of a dataset
        # (the largest share of a demo day's validation, py-spy).
        suite = self.ctx.suites.add(
            gx.ExpectationSuite(
                name=name,
                expectations=[
                    gx.expectations.ExpectColumnValuesToBeNull(
                        column=f"r{i}",
                        meta={
                            "rule_id": rule.id,
                            "rule_type": rule.type,
                            "dimension": rule.dimension,
                            "severity": rule.severity,
                            "weight": rule.weight,
                            "threshold_pct": rule.threshold,
                        },
                        notes=(
                            f"**{rule.id}** ({rule.dimension}, {rule.severity}, weight "
                            f"{rule.weight:g}, threshold {rule.threshold:g}%): "
                            f"{rule.description_zh} / {rule.description_en}"
                        ),
                    )
                    for i, rule in enumerate(rules)
                ],
            )
        )
        definition = self.ctx.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        run = definition.run(
            batch_parameters={
                "dataframe": html_escaped(frame).to_pandas(types_mapper=pd.ArrowDtype)
            },
            result_format={"result_format": "BASIC", "partial_unexpected_count": PARTIAL_KEYS},
        )
        out: dict[str, Outcome] = {}
        # GX does not return results in suite order: key them by meta.rule_id.
        for r in run.results:
            rule_id = r.expectation_config.meta["rule_id"]
            info = r.exception_info or {}
            raised = info.get("raised_exception") if isinstance(info, dict) else None
            result = r.result or {}
            error = None
            if raised:
                error = f"GX could not evaluate the expectation: {info.get('exception_message')}"
            elif "unexpected_count" not in result:
                error = "GX returned no result for the expectation"
            out[rule_id] = Outcome(
                rule_id=rule_id,
                success=bool(r.success),
                element_count=int(result.get("element_count") or 0),
                unexpected_count=int(result.get("unexpected_count") or 0),
                partial_keys=[
                    html.unescape(str(k)) for k in result.get("partial_unexpected_list") or []
                ],
                error=error,
                expectation=f"great_expectations {r.expectation_config.type}"
                f"(column={r.expectation_config.kwargs.get('column')}) in suite {name}",
            )
        for rule in rules:
            if rule.id not in out:
                out[rule.id] = Outcome(rule.id, False, 0, 0, [], "GX returned no result")
        return out

    def build_docs(self, site_dir: Path) -> Path | None:
        """Render this run's Data Docs into `site_dir`; returns its index.html."""
        if self.project_dir is None:
            return None
        shutil.rmtree(site_dir, ignore_errors=True)
        site_dir.mkdir(parents=True)
        self.ctx.add_data_docs_site(
            site_name="hqlake",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.ctx.build_data_docs(site_names=["hqlake"])
        index = site_dir / "index.html"
        return index if index.exists() else None
