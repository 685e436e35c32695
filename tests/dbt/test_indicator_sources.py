"""The indicator marts name the contract fields each measure reads (`meta: {sources: …}`):
`hqlake rules suggest` traces a rule's failures to indicators through them, so every name
must be a field of the contracts and every measure must declare its fields."""

from __future__ import annotations

import yaml

from contracts.loader import contracts
from infra.dbtrun import INDICATOR_MODELS, indicator_sources

# Columns that place a row rather than measure it: a model's grain and its labels.
LABELS = {"org_code", "county_code", "icd10_chapter_number", "icd10_chapter_range"}


def _models():
    for path in sorted(INDICATOR_MODELS.glob("*.yml")):
        yield from (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []


def _unknown(sources: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    datasets = contracts().datasets
    return [
        (column, source)
        for column, names in sources.items()
        for source in names
        if source.count(".") != 1
        or source.split(".")[0] not in datasets
        or source.split(".")[1] not in datasets[source.split(".")[0]].by_name
    ]


def test_every_source_is_a_field_of_the_contracts():
    sources = indicator_sources()
    assert len(sources) >= 40
    assert _unknown(sources) == []


def test_every_measure_declares_its_sources():
    sources = indicator_sources()
    missing = []
    for model in _models():
        grain = {
            c
            for test in model.get("data_tests") or []
            if isinstance(test, dict) and "unique_combination" in test
            for c in test["unique_combination"]["arguments"]["columns"]
        }
        assert grain, f"{model['name']} states no grain"
        for column in model["columns"]:
            name = column["name"]
            if name not in grain | LABELS and f"{model['name']}.{name}" not in sources:
                missing.append(f"{model['name']}.{name}")
    assert missing == []


def test_a_source_naming_an_unknown_field_is_found(tmp_path):
    (tmp_path / "_m.yml").write_text(
        "models:\n  - name: ind_x\n    columns:\n      - name: visits\n"
        "        meta: {sources: [outpatient_visit.visit_tiem]}\n",
        encoding="utf-8",
    )
    sources = indicator_sources(tmp_path)
    assert sources == {"ind_x.visits": ("outpatient_visit.visit_tiem",)}
    assert _unknown(sources) == [("ind_x.visits", "outpatient_visit.visit_tiem")]
