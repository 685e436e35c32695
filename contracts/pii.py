"""The personal-data masking policy: how a personal value, a record key or a free text may be
shown in pages, e-mails and their attachments.

A key part from a field the contract tags `pii` is masked by its kind (identity, name,
phone); any other part, and any free text (rule notes, refusal reasons), has every valid
resident identity number (checksum verified) and mainland mobile number masked.
"""

from __future__ import annotations

import re

from stdnum.cn import ric

from contracts.loader import contracts
from contracts.model import Dataset

_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_IDENTITY = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")


def mask(value: str, kind: str) -> str:
    """A personal value as it may be shown: identity 411***********12, phone 138****5678,
    name 张**."""
    if not value:
        return value
    if kind == "name":
        return value[0] + "*" * max(len(value) - 1, 1)
    if kind == "phone" and len(value) >= 8:
        return value[:3] + "*" * (len(value) - 7) + value[-4:]
    if kind == "identity" and len(value) > 5:
        return value[:3] + "*" * (len(value) - 5) + value[-2:]
    return "*" * len(value)


def _is_identity(value: str) -> bool:
    if not _IDENTITY.fullmatch(value):
        return False
    try:
        return ric.calc_check_digit(value[:17]) == value[17].upper()
    except ValueError:
        return False


def mask_text(text: str) -> str:
    """`text` with every valid resident identity number and mobile number masked."""
    text = _IDENTITY.sub(
        lambda m: mask(m[0], "identity") if _is_identity(m[0]) else m[0], text or ""
    )
    return _MOBILE.sub(lambda m: mask(m[0], "phone"), text)


def mask_key(dataset: str | Dataset | None, key: str) -> str:
    """A record key (key fields joined by '|', as expectations.engines.sqlrules.record_key
    builds it) of `dataset` (a name or its contract) with every part that is, or looks like,
    personal data masked."""
    ds = dataset if isinstance(dataset, Dataset) else contracts().datasets.get(dataset or "")
    parts = key.split("|")
    kinds: list[str | None] = [None] * len(parts)
    if ds is not None and len(ds.key) == len(parts):
        kinds = [ds.pii_fields.get(name) for name in ds.key]
    shown = []
    for part, kind in zip(parts, kinds, strict=True):
        if kind:
            shown.append(mask(part, kind))
        elif _is_identity(part):
            shown.append(mask(part, "identity"))
        else:
            shown.append(_MOBILE.sub(lambda m: mask(m[0], "phone"), part))
    return "|".join(shown)
