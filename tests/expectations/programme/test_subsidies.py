"""contracts/subsidies.yaml: phases and whole-yuan amounts by organisation kind, validated, and
who is paid in a signed month."""

import datetime as dt

import pytest

from contracts.loader import ContractError
from contracts.registry import Organisation, Registry
from expectations.programme.subsidies import load_subsidy_config, subsidy_lines

GOOD = """
currency: CNY
phases:
  - {name: 一期, first_month: "2026-01", last_month: "2026-06"}
  - {name: 二期, first_month: "2026-07", last_month: "2026-12"}
amount_yuan: {hospital: 50000, county: 60000}
"""


def test_bundled_config_has_the_plans_amounts():
    config = load_subsidy_config()
    assert config.amount_yuan == {"hospital": 50000, "county": 60000}
    assert all(type(v) is int for v in config.amount_yuan.values())
    assert config.currency == "CNY"
    assert config.phase(dt.date(2026, 11, 30)).name == "一期"
    assert config.phase(dt.date(2025, 12, 1)) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("50000", "50000.5"), "amount_yuan.hospital: Input should be a valid integer"),
        (("county: 60000", "county: -1"), "an amount cannot be negative"),
        (("county: 60000", "clinic: 1"), "needs exactly the organisation kinds"),
        (('last_month: "2026-06"', 'last_month: "2026-07"'), "overlap"),
        (('last_month: "2026-12"', 'last_month: "2026-13"'), "is not a month 'YYYY-MM'"),
        (('first_month: "2026-07"', 'first_month: "2027-01"'), "last_month is before"),
        (("currency: CNY", "currency: yuan"), "currency: String should match pattern"),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path, change, message):
    path = tmp_path / "subsidies.yaml"
    path.write_text(GOOD.replace(*change), encoding="utf-8")
    with pytest.raises(ContractError) as err:
        load_subsidy_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_lines_by_kind_once_per_phase(tmp_path):
    path = tmp_path / "subsidies.yaml"
    path.write_text(GOOD, encoding="utf-8")
    config = load_subsidy_config(path)

    def org(code, kind):
        level = "county" if kind == "county" else "tertiary"
        return Organisation(code, code, kind, level, "411502", (), dt.date(2026, 1, 1), None)

    registry = Registry({o.org_code: o for o in (org("H", "hospital"), org("C", "county"))}, "t")
    rows = [{"org_code": "H", "passed": 1}, {"org_code": "C", "passed": 1}]
    lines = subsidy_lines(dt.date(2026, 3, 1), rows, registry, config, {"C": dt.date(2026, 2, 1)})
    assert [(x["org_code"], x["phase"], x["amount_yuan"], x["paid_in"]) for x in lines] == [
        ("H", "一期", 50000, None),
        ("C", "一期", 0, dt.date(2026, 2, 1)),
    ]
    assert (
        subsidy_lines(dt.date(2026, 3, 1), [{"org_code": "H", "passed": 0}], registry, config, {})
        == []
    )
    assert subsidy_lines(dt.date(2027, 1, 1), rows, registry, config, {}) == []
