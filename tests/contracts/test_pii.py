"""The masking policy: personal values, record keys and free text as they may be shown."""

import datetime as dt

from contracts.codesystems import make_resident_id
from contracts.loader import contracts
from contracts.pii import mask, mask_key, mask_text

IDENTITY = make_resident_id("411502", dt.date(1980, 5, 6), 12, "1")


def test_masking():
    assert mask("411502198005060012", "identity") == "411*************12"
    assert mask("13812345678", "phone") == "138****5678"
    assert mask("欧阳娜娜", "name") == "欧***"
    # a key from a field the contract tags pii is masked by its kind
    by_identity = contracts().dataset("patient").model_copy(update={"key": ("id_no", "name")})
    assert mask_key(by_identity, f"{IDENTITY}|张三") == f"{mask(IDENTITY, 'identity')}|张*"
    # safety net: identity numbers (valid check digit) and mobile numbers in any key or note
    assert mask_key("outpatient_visit", IDENTITY) == mask(IDENTITY, "identity")
    assert mask_key("outpatient_visit", "MZ261115000123") == "MZ261115000123"
    assert mask_key(None, "V|13912345678") == "V|139****5678"
    invalid = IDENTITY[:17] + ("0" if IDENTITY[17] != "0" else "1")
    assert mask_text(f"id {IDENTITY}, visit {invalid}") == (
        f"id {mask(IDENTITY, 'identity')}, visit {invalid}"
    )
