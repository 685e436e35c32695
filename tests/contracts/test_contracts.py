import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from contracts.codesystems import (
    division_valid,
    icd9cm3_valid,
    icd10_valid,
    make_resident_id,
    make_uscc,
    resident_id_birth_sex,
    resident_id_problem,
    uscc_valid,
)
from contracts.loader import CONTRACTS_DIR, ContractError, contracts, load_contracts
from contracts.registry import SAMPLE_REGISTRY, load_registry, parse_registry

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "upload-standard.md"


def test_all_ten_datasets_with_keys_and_events():
    c = contracts()
    assert sorted(c.datasets) == sorted(
        [
            "patient",
            "outpatient_visit",
            "inpatient_discharge",
            "prescription",
            "lab_result",
            "health_record",
            "chronic_followup",
            "elderly_check",
            "vaccination",
            "death_registration",
        ]
    )
    assert {d.dataset for d in c.datasets_for("county")} == {
        "health_record",
        "chronic_followup",
        "elderly_check",
        "vaccination",
        "death_registration",
    }
    assert c.dataset("outpatient_visit").key == ("visit_id",)
    assert c.dataset("inpatient_discharge").event == "discharge_time"
    assert c.dataset("patient").pii_fields == {
        "id_no": "identity",
        "name": "name",
        "phone": "phone",
    }
    assert c.timeliness.deadlines["county"].calendar == "working"
    assert c.timeliness.record_lag.late_after_days == 7


@pytest.mark.skipif(not SPEC.exists(), reason="the shared spec is not beside this checkout")
def test_every_field_of_the_standard_is_in_a_contract():
    """Parse the field tables of section 4 and compare with the contracts."""
    text = SPEC.read_text(encoding="utf-8")
    c = contracts()
    section = text.split("## 4. Datasets")[1].split("## 5.")[0]
    for block in section.split("**")[1::2]:
        name = block.strip()
        if name not in c.datasets:
            continue
        table = section.split(f"**{name}**")[1].split("**")[0]
        spec_fields = set()
        for row in table.splitlines():
            if row.startswith("| ") and not row.startswith(("| field", "|---")):
                for f in row.split("|")[1].split(","):
                    spec_fields.add(f.strip())
        assert spec_fields == set(c.dataset(name).field_names), name


def test_field_types_map_to_clickhouse_and_arrow():
    visit = contracts().dataset("outpatient_visit")
    assert visit.by_name["total_fee"].clickhouse_type == "Nullable(Decimal(12,2))"
    assert visit.by_name["visit_time"].clickhouse_type == "Nullable(DateTime('Asia/Shanghai'))"
    assert str(visit.arrow_schema().field("total_fee").type) == "decimal128(12, 2)"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{name: total_fee, type: "decimal(12,2)"',
            "{name: total_fee, type: money",
            "fields.9 ('total_fee').type",
        ),
        (
            "{name: visit_type, type: str, required: true, codes: visit_type}",
            "{name: visit_type, type: str, required: true, codes: visit_kind}",
            "field 'visit_type': unknown code system 'visit_kind'",
        ),
        (
            'left: drug_fee, op: "<=", right: total_fee',
            'left: drug_fee, op: "<=", right: total',
            "record check 'drug_fee_le_total': refers to unknown fields ['total']",
        ),
        ("event: visit_time", "event: visited_at", "unknown field 'visited_at'"),
        (
            "{name: dept_name, type: str, required: true}",
            "{name: dept_name, type: str, required: true, diagnosis: true}",
            "diagnosis field 'dept_name' must have codes: icd10",
        ),
        (
            "checks: [{rule: min, value: 0}]}\n  - {name: drug_fee",
            "checks: [{rule: minimum, value: 0}]}\n  - {name: drug_fee",
            "unknown field rule 'minimum'",
        ),
    ],
)
def test_broken_contract_names_file_and_field(tmp_path, old, new, message):
    root = _copy(tmp_path)
    path = root / "datasets" / "outpatient_visit.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ContractError) as exc:
        load_contracts(root)
    assert "outpatient_visit.yaml" in str(exc.value)
    assert message in str(exc.value)


def test_the_diagnoses_of_a_row_are_stated_once_in_the_contracts():
    """Upload standard section 5 (v1.1): every diagnosis field, lists included."""
    marked = {
        (name, f.name, f.separator)
        for name, ds in contracts().datasets.items()
        for f in ds.diagnosis_fields
    }
    assert marked == {
        ("outpatient_visit", "diagnosis_code", None),
        ("inpatient_discharge", "principal_dx_code", None),
        ("inpatient_discharge", "other_dx_codes", ";"),
    }
    # no rule lists diagnosis fields of its own
    assert "diagnoses" not in contracts().cross_dataset["sex_specific_diagnoses"]


def test_broken_reference_to_another_dataset(tmp_path):
    root = _copy(tmp_path)
    path = root / "datasets" / "chronic_followup.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "dataset: health_record", "dataset: health_records"
        )
    )
    with pytest.raises(
        ContractError,
        match=re.escape("chronic_followup.yaml: field 'record_id': refers to unknown dataset"),
    ):
        load_contracts(root)


def test_unreadable_yaml_is_a_contract_error(tmp_path):
    root = _copy(tmp_path)
    (root / "timeliness.yaml").write_text("deadlines: [unclosed", encoding="utf-8")
    with pytest.raises(ContractError, match=re.escape("timeliness.yaml: cannot read YAML")):
        load_contracts(root)


def test_resident_id_rules():
    older_than_area_code = make_resident_id("411502", dt.date(1950, 3, 4), 17, "2")
    assert resident_id_problem(older_than_area_code) is None  # area code younger than holder: fine
    assert resident_id_birth_sex(older_than_area_code) == (dt.date(1950, 3, 4), "2")
    wrong = older_than_area_code[:-1] + ("1" if older_than_area_code[-1] != "1" else "2")
    assert "check character" in resident_id_problem(wrong)
    assert "length 17" in resident_id_problem(older_than_area_code[:-1])
    bad_date = make_resident_id("411502", dt.date(1950, 3, 4), 17, "2")
    body = bad_date[:6] + "19500230" + bad_date[14:17]
    from stdnum.cn import ric

    assert "not a calendar date" in resident_id_problem(body + ric.calc_check_digit(body + "0"))
    future = make_resident_id("411502", dt.date(2026, 12, 1), 1, "1")
    assert "after the business date" in resident_id_problem(future, dt.date(2026, 11, 9))


def test_code_systems_from_packages():
    assert icd10_valid("I10") and icd10_valid("I10.x00") and icd10_valid("E11.9")
    assert icd10_valid("X59.9") and icd10_valid("X59.9x01")  # chapter XX starts with X
    assert not icd10_valid("Z99.99") and not icd10_valid("I1O") and not icd10_valid(".x00")
    assert icd9cm3_valid("36.06") and icd9cm3_valid("36.0601") and not icd9cm3_valid("3606")
    assert division_valid("411526") and division_valid("411526100200")
    assert not division_valid("411599") and not division_valid("41152")
    code = make_uscc("411502", 777)
    assert uscc_valid(code) and not uscc_valid(code[:-1] + ("0" if code[-1] != "0" else "1"))


def test_bundled_registry_is_xinyang_like():
    registry = load_registry(SAMPLE_REGISTRY)
    orgs = list(registry.organisations.values())
    assert sum(o.kind == "hospital" for o in orgs) == 40
    assert {o.org_code for o in orgs if o.kind == "county"} == {
        "411502",
        "411503",
        "411521",
        "411522",
        "411523",
        "411524",
        "411525",
        "411526",
        "411527",
        "411528",
    }
    assert {o.level for o in orgs} == {"tertiary", "secondary", "primary", "county"}
    assert all(uscc_valid(o.org_code) for o in orgs if o.kind == "hospital")


def test_registry_errors_and_activity():
    header = "org_code,name,kind,level,county_code,emails,active_from,active_to\n"
    good = make_uscc("411502", 9)
    with pytest.raises(ContractError, match="org_code '12345' has 5 characters"):
        parse_registry(header + "12345,x,hospital,tertiary,411502,a@b,2020-01-01,\n", "reg.csv")
    with pytest.raises(ContractError, match="level 'county' is not allowed for a hospital"):
        parse_registry(header + f"{good},x,hospital,county,411502,a@b,2020-01-01,\n", "reg.csv")
    with pytest.raises(
        ContractError, match=re.escape("registry reg.csv: no column org_code, kind")
    ):
        parse_registry("code,name\n", "reg.csv")
    registry = parse_registry(
        header + f"{good},x,hospital,primary,411502,a@b;c@d,2020-01-01,2026-06-30\n", "reg.csv"
    )
    assert registry.get(good).emails == ("a@b", "c@d")
    assert registry.why_not_accepted(good, dt.date(2026, 6, 30)) is None
    assert "not active on 2026-07-01" in registry.why_not_accepted(good, dt.date(2026, 7, 1))
    assert "not in the registry" in registry.why_not_accepted("411502", dt.date(2026, 7, 1))


def _texts(node, where):
    """Every mapping that holds a `zh` or `en` key in a YAML tree, with its path."""
    if isinstance(node, dict):
        if "zh" in node or "en" in node:
            yield where, node
        for key, value in node.items():
            yield from _texts(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _texts(value, f"{where}[{i}]")


def test_every_bilingual_text_is_exactly_zh_and_en():
    """A comma in an unquoted flow-mapping text splits it into more keys (and cuts the text);
    every {zh, en} text of the contracts' YAML has exactly those two non-empty strings."""
    import yaml

    seen = 0
    for path in sorted(CONTRACTS_DIR.rglob("*.yaml")):
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
        for where, text in _texts(tree, path.name):
            seen += 1
            assert set(text) == {"zh", "en"}, f"{where}: keys {sorted(text)}"
            assert all(isinstance(v, str) and v.strip() for v in text.values()), where
    assert seen > 100
