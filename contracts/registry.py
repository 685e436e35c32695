"""The organisation registry (upload standard, section 1): who may upload, and how they rank."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from contracts.codesystems import division_valid, uscc_valid
from contracts.loader import ContractError

REGISTRY_HEADER = [
    "org_code",
    "name",
    "kind",
    "level",
    "county_code",
    "emails",
    "active_from",
    "active_to",
]
SAMPLE_REGISTRY = Path(__file__).parent / "registry" / "sample_city.csv"
LEVELS = {"hospital": ("tertiary", "secondary", "primary"), "county": ("county",)}


@dataclass(frozen=True)
class Organisation:
    org_code: str
    name: str
    kind: str
    level: str
    county_code: str
    emails: tuple[str, ...]
    active_from: dt.date
    active_to: dt.date | None

    @property
    def peer_group(self) -> str:
        return self.level

    def active_on(self, day: dt.date) -> bool:
        return self.active_from <= day and (self.active_to is None or day <= self.active_to)


@dataclass(frozen=True)
class Registry:
    organisations: dict[str, Organisation]
    source: str

    def get(self, org_code: str) -> Organisation | None:
        return self.organisations.get(org_code)

    def active(self, day: dt.date) -> list[Organisation]:
        return [o for o in self.organisations.values() if o.active_on(day)]

    def why_not_accepted(self, org_code: str, day: dt.date) -> str | None:
        """The reason an upload from `org_code` for `day` is refused, or None."""
        org = self.get(org_code)
        if org is None:
            return f"organisation {org_code!r} is not in the registry ({self.source})"
        if not org.active_on(day):
            until = org.active_to.isoformat() if org.active_to else "open"
            return (
                f"organisation {org_code} is not active on {day} "
                f"(active {org.active_from}..{until})"
            )
        return None


def _parse_date(value: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{where}: {value!r} is not a date YYYY-MM-DD") from None


def parse_registry(text: str, source: str) -> Registry:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames != REGISTRY_HEADER:
        raise ContractError(
            f"{source}: header must be {','.join(REGISTRY_HEADER)}, got {reader.fieldnames}"
        )
    orgs: dict[str, Organisation] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{source}:{line}"
        code, kind, level = row["org_code"].strip(), row["kind"].strip(), row["level"].strip()
        if kind not in LEVELS:
            raise ContractError(f"{where}: kind {kind!r} must be hospital or county")
        if level not in LEVELS[kind]:
            raise ContractError(f"{where}: level {level!r} is not allowed for a {kind}")
        if kind == "hospital" and not uscc_valid(code):
            raise ContractError(
                f"{where}: org_code {code!r} is not a valid unified social credit code"
            )
        if kind == "county" and not (len(code) == 6 and division_valid(code)):
            raise ContractError(f"{where}: org_code {code!r} is not a GB/T 2260 division code")
        if not division_valid(row["county_code"].strip()):
            raise ContractError(
                f"{where}: county_code {row['county_code']!r} is not a GB/T 2260 code"
            )
        if code in orgs:
            raise ContractError(f"{where}: org_code {code} appears twice")
        active_to = row["active_to"].strip()
        orgs[code] = Organisation(
            org_code=code,
            name=row["name"].strip(),
            kind=kind,
            level=level,
            county_code=row["county_code"].strip(),
            emails=tuple(e.strip() for e in row["emails"].split(";") if e.strip()),
            active_from=_parse_date(row["active_from"].strip(), where),
            active_to=_parse_date(active_to, where) if active_to else None,
        )
    return Registry(orgs, source)


def load_registry(path: Path | str | None = None) -> Registry:
    """The registry at `path`, else `HQLAKE_ORG_REGISTRY`, else the bundled sample city."""
    from infra.settings import settings

    path = Path(path or settings().org_registry or SAMPLE_REGISTRY)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read the organisation registry: {exc}") from exc
    return parse_registry(text, str(path))


def registry_csv(orgs: list[Organisation]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGISTRY_HEADER)
    for o in orgs:
        writer.writerow(
            [
                o.org_code,
                o.name,
                o.kind,
                o.level,
                o.county_code,
                ";".join(o.emails),
                o.active_from.isoformat(),
                o.active_to.isoformat() if o.active_to else "",
            ]
        )
    return out.getvalue()
