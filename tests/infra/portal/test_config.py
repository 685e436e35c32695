"""contracts/portal.yaml, validated: a mistake names the file and the field."""

from __future__ import annotations

import pytest
import yaml

from contracts.loader import ContractError
from infra.portal.config import PORTAL_CONFIG, load_portal_config


def test_the_bundled_policy_loads():
    config = load_portal_config()
    assert config.sessions.idle < config.sessions.absolute
    assert config.throttle.account_failures <= config.throttle.address_failures
    assert config.passwords.min_chars >= 12


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("sessions", "idle_minutes", 24 * 60, "idle_minutes must not be longer"),
        ("throttle", "account_failures", 0, "account_failures"),
        ("passwords", "min_chars", 4, "min_chars"),
        ("requests", "max_body_kib", "lots", "max_body_kib"),
        ("sessions", "idle_mins", 5, "idle_mins"),
    ],
)
def test_a_mistake_names_the_file_and_field(tmp_path, section, key, value, expected):
    raw = yaml.safe_load(PORTAL_CONFIG.read_text(encoding="utf-8"))
    raw[section][key] = value
    if section == "sessions" and key == "idle_minutes":
        raw["sessions"]["absolute_hours"] = 1
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ContractError, match=expected) as raised:
        load_portal_config(path)
    assert str(path) in str(raised.value)


def test_argon2_memory_below_8_kib_a_lane_is_refused(tmp_path):
    raw = yaml.safe_load(PORTAL_CONFIG.read_text(encoding="utf-8"))
    raw["passwords"]["hashing"] = {"time_cost": 1, "memory_kib": 16, "parallelism": 4}
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ContractError, match="8 KiB per lane"):
        load_portal_config(path)


@pytest.mark.parametrize(
    "hashing",
    [
        {"time_cost": 1, "memory_kib": 65536, "parallelism": 4},
        {"time_cost": 3, "memory_kib": 8192, "parallelism": 1},
    ],
)
def test_a_contract_below_argon2s_minimum_cost_is_refused(tmp_path, hashing):
    # tests may build a cheaper PasswordHashing for logins; a portal's contract may not
    raw = yaml.safe_load(PORTAL_CONFIG.read_text(encoding="utf-8"))
    raw["passwords"]["hashing"] = hashing
    path = tmp_path / "portal.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ContractError, match="weaker than Argon2id's minimum"):
        load_portal_config(path)
