import shutil

import pytest

from contracts.loader import CONTRACTS_DIR, ContractError, contracts
from expectations.rules.rulebase import load_rulebase, rulebase


def test_at_least_35_rule_types_all_used_on_four_dimensions():
    rb = rulebase()
    assert len(rb.types) >= 35
    assert {r.type for r in rb.rules} == set(rb.types)
    assert {r.dimension for r in rb.rules} == {"completeness", "timeliness", "correctness", "logic"}
    assert len({r.id for r in rb.rules}) == len(rb.rules)


def test_every_statement_of_the_contracts_becomes_a_rule():
    ids = {r.id for r in rulebase().rules}
    for ds in contracts().datasets.values():
        for f in ds.fields:
            if f.required:
                assert f"{ds.dataset}.{f.name}.required" in ids
            if f.codes:
                assert any(
                    i.startswith(f"{ds.dataset}.{f.name}.")
                    and i.split(".")[-1]
                    in {"code_in_system", "icd10_valid", "icd9cm3_format", "division_valid"}
                    for i in ids
                )
            assert sum(i.startswith(f"{ds.dataset}.{f.name}.") for i in ids) >= len(f.checks)
        for check in ds.record_checks:
            assert f"{ds.dataset}.{check.id}" in ids
        assert f"{ds.dataset}.{ds.event}.record_not_late" in ids
        assert f"{ds.dataset}.batch_on_time" in ids
    assert {f"cross.{n}" for n in contracts().cross_dataset} <= ids


def test_rule_carries_what_the_report_needs():
    rule = next(r for r in rulebase().rules if r.id == "outpatient_visit.fee_components_sum")
    assert (rule.type, rule.dimension, rule.level) == ("sum_equals", "logic", "record")
    assert rule.params["total"] == "total_fee" and rule.params["tolerance"] == 0.01
    assert rule.description_zh and rule.description_en and rule.fix_hint_zh and rule.fix_hint_en
    icd = next(
        r for r in rulebase().rules if r.id == "inpatient_discharge.other_dx_codes.icd10_valid"
    )
    assert icd.params["separator"] == ";"


def test_overrides_apply_by_peer_group_and_change_the_fingerprint():
    rb = rulebase()
    primary, fp_primary = rb.effective_rules("any", "primary")
    tertiary, fp_tertiary = rb.effective_rules("any", "tertiary")
    pick = lambda rules: next(r for r in rules if r.id == "patient.updated_at.record_not_late")  # noqa: E731
    assert pick(primary).threshold == 3 and pick(tertiary).threshold == 1
    assert fp_primary != fp_tertiary
    assert rb.effective_rules("other", "tertiary")[1] == fp_tertiary  # reproducible


def _copy(tmp_path):
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def test_broken_rule_type_is_named(tmp_path):
    root = _copy(tmp_path)
    path = root / "rules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "dimension: timeliness\n    level: batch", "dimension: punctuality\n    level: batch", 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(ContractError, match="rule type 'batch_on_time': dimension"):
        load_rulebase(root)


def test_override_that_matches_nothing_is_an_error(tmp_path):
    root = _copy(tmp_path)
    (root / "rule_overrides.yaml").write_text(
        "overrides:\n  - {rule: 'nosuch.*', weight: 2, notes: typo}\n", encoding="utf-8"
    )
    with pytest.raises(ContractError, match="matches no rule"):
        load_rulebase(root)


def test_every_rule_type_names_the_engine_that_implements_it():
    from expectations.engines.registry import ENGINES

    rb = rulebase()
    assert {t.engine for t in rb.types.values()} == set(ENGINES)
    for name, rule_type in rb.types.items():
        assert name in ENGINES[rule_type.engine]
    assert sorted(t for table in ENGINES.values() for t in table) == sorted(rb.types)
    assert {r.type for r in rb.rules_for("monitoring")} == set(rb.types_of("monitoring"))
    assert [r.id for r in rb.rules_for("org_day")] == ["org.uploads_recognised"]


def _with_engine(tmp_path, type_name, engine):
    root = _copy(tmp_path)
    path = root / "rules.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n  {type_name}:\n")
    at = text.index("    engine: ", start)
    end = text.index("\n", at)
    path.write_text(text[:at] + f"    engine: {engine}" + text[end:], encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("type_name", "engine", "message"),
    [
        ("bmi", "row_python", "rule type 'bmi': unknown engine 'row_python'"),
        ("bmi", "cross_sql", "rule type 'bmi': engine 'cross_sql' has no implementation"),
        ("values_typed", "row_sql", "rule type 'values_typed': engine 'row_sql' has no impl"),
    ],
)
def test_rule_type_without_an_engine_that_implements_it_is_named(
    tmp_path, type_name, engine, message
):
    with pytest.raises(ContractError, match=message):
        load_rulebase(_with_engine(tmp_path, type_name, engine))


def test_rule_type_without_engine_is_named(tmp_path):
    root = _with_engine(tmp_path, "bmi", "row_sql")
    path = root / "rules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "level: record\n    engine: row_sql\n    weight: 1\n    description: {zh: BMI",
            "level: record\n    weight: 1\n    description: {zh: BMI",
        ),
        encoding="utf-8",
    )
    with pytest.raises(ContractError, match="rule type 'bmi': engine: Field required"):
        load_rulebase(root)


def test_rule_type_implemented_by_two_engines_is_named(monkeypatch):
    from expectations.engines import crossrules, sqlrules

    monkeypatch.setitem(crossrules.CROSS_RULES, "bmi", sqlrules.ROW_RULES["bmi"])
    with pytest.raises(ContractError, match=r"rule type 'bmi': names engine 'row_sql' but \["):
        load_rulebase()


def test_section_7_types_are_tagged_and_can_be_left_out():
    """Every rule type stated by section 7 of the standard (v1.1) names its subsection, and
    `without_sections` is the rule base without exactly those (what the bench compares)."""
    rb = rulebase()
    tagged = {name: t.section for name, t in rb.types.items() if t.section}
    assert set(tagged.values()) == {"7.1", "7.2", "7.3"}
    for section in ("7.1", "7.2", "7.3"):
        assert sum(s == section for s in tagged.values()) >= 4, section
    before = rb.without_sections()
    assert not set(before.types) & set(tagged)
    assert {r.id for r in before.rules} == {r.id for r in rb.rules if r.type not in tagged}
    assert len(before.rules) < len(rb.rules)
