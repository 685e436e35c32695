"""The organisation registry (upload standard, section 1): who may upload, and how they rank."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from contracts.codesystems import division_valid
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


class RegistryError(ContractError):
    """The registry file cannot be used as it is: the message names the line, field and fix."""


_FIX = "fix the registry and re-run"
# Line breaks and invisible format characters in a name or address end up in e-mail
# headers, CSV files and report pages; no registry field needs them.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
_EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+")


def _control_character(value: str) -> str | None:
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            kind = "a line break" if ch in "\r\n\u2028\u2029" else "a control character"
            return f"{kind} (U+{ord(ch):04X})"
    return None


def _uscc_problem(code: str) -> str | None:
    try:
        uscc.validate(code)
    except InvalidLength:
        return f"has {len(code)} characters, a unified social credit code has 18"
    except InvalidFormat:
        return "has characters a unified social credit code cannot have (GB 32100)"
    except InvalidChecksum:
        return "has a wrong check character (the 18th, GB 32100)"
    except ValidationError:
        return "is not a valid unified social credit code (GB 32100)"
    return None


def _parse_date(value: str, field: str, where: str, required: bool) -> dt.date | None:
    if not value:
        if required:
            raise RegistryError(f"{where}: {field} is empty, it must be a date YYYY-MM-DD; {_FIX}")
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise RegistryError(
            f"{where}: {field} {value!r} is not a date YYYY-MM-DD; {_FIX}"
        ) from None


def _check_header(header: list[str], source: str) -> None:
    missing = [c for c in REGISTRY_HEADER if c not in header]
    unknown = [c for c in header if c not in REGISTRY_HEADER]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problem = (
        f"no column {', '.join(missing)}"
        if missing
        else f"unknown column {', '.join(unknown)}"
        if unknown
        else f"column {', '.join(repeated)} appears twice"
        if repeated
        else None
    )
    if problem:
        raise RegistryError(
            f"registry {source}: {problem}; the header must be {','.join(REGISTRY_HEADER)}"
        )


def _organisation(values: dict[str, str], where: str) -> Organisation:
    code, kind, level = values["org_code"], values["kind"], values["level"]
    if kind not in LEVELS:
        raise RegistryError(f"{where}: kind {kind!r} must be hospital or county; {_FIX}")
    if level not in LEVELS[kind]:
        raise RegistryError(
            f"{where}: level {level!r} is not allowed for a {kind} "
            f"(use {' or '.join(LEVELS[kind])}); {_FIX}"
        )
    if kind == "hospital" and (problem := _uscc_problem(code)):
        raise RegistryError(f"{where}: org_code {code!r} {problem}; {_FIX}")
    if kind == "county" and not (len(code) == 6 and division_valid(code)):
        raise RegistryError(
            f"{where}: org_code {code!r} is not a 6-digit GB/T 2260 division code; {_FIX}"
        )
    if not division_valid(values["county_code"]):
        raise RegistryError(
            f"{where}: county_code {values['county_code']!r} is not a GB/T 2260 code; {_FIX}"
        )
    emails = tuple(e.strip() for e in values["emails"].split(";") if e.strip())
    for email in emails:
        if not _EMAIL.fullmatch(email):
            raise RegistryError(
                f"{where}: emails {email!r} is not an e-mail address "
                f"(separate addresses with ';'); {_FIX}"
            )
    active_from = _parse_date(values["active_from"], "active_from", where, required=True)
    active_to = _parse_date(values["active_to"], "active_to", where, required=False)
    if active_from and active_to and active_to < active_from:
        raise RegistryError(
            f"{where}: active_to {active_to} is before active_from {active_from}; {_FIX}"
        )
    return Organisation(
        org_code=code,
        name=values["name"],
        kind=kind,
        level=level,
        county_code=values["county_code"],
        emails=emails,
        active_from=active_from,
        active_to=active_to,
    )


def parse_registry(text: str, source: str) -> Registry:
    """Every row checked; the first problem raises RegistryError naming its line and field."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [c.strip() for c in next(reader, [])]
    _check_header(header, source)
    orgs: dict[str, Organisation] = {}
    first_line: dict[str, int] = {}
    start = reader.line_num + 1  # where the next record starts (a quoted field may span lines)
    for row in reader:
        line, start = start, reader.line_num + 1
        where = f"registry {source} line {line}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise RegistryError(
                f"{where}: the row has {len(row)} fields, the header has {len(header)} "
                f"(a missing or extra comma?); {_FIX}"
            )
        values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
        for name in REGISTRY_HEADER:
            if problem := _control_character(values[name]):
                raise RegistryError(f"{where}: {name} has {problem} in it; {_FIX}")
        org = _organisation(values, where)
        if org.org_code in orgs:
            raise RegistryError(
                f"{where}: org_code {org.org_code} appears twice "
                f"(first on line {first_line[org.org_code]}); {_FIX}"
            )
        orgs[org.org_code], first_line[org.org_code] = org, line
    if not orgs:
        raise RegistryError(f"registry {source}: no organisations in it; {_FIX}")
    return Registry(orgs, source)


def load_registry(path: Path | str | None = None) -> Registry:
    """The registry at `path` (the caller's configuration: HQLAKE_ORG_REGISTRY), else the
    bundled sample city."""
    path = Path(path or SAMPLE_REGISTRY)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"registry {path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8 CSV and re-run"
        ) from exc
    except OSError as exc:
        raise RegistryError(
            f"registry {path}: cannot read it ({exc.strerror or exc}); "
            "set HQLAKE_ORG_REGISTRY to the registry CSV"
        ) from exc
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
