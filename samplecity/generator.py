"""Orchestration: organisations, population, deaths, faults; day after day, write the inbox."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from contracts.registry import registry_csv
from contracts.upload import MANIFEST
from samplecity import faults as fault_mod
from samplecity import refdata
from samplecity.city import CHRONIC, City, Death, stable_int
from samplecity.clock import deadline, epoch
from samplecity.counties import DEATH, FOLLOWUP, RECORD, county_day
from samplecity.counties import ELDERLY as ELDERLY_DS
from samplecity.faults import FILE_FAULTS, FaultPlan, Truth
from samplecity.hospitals import (
    IN_HOSPITAL_CAUSES,
    PATIENT,
    STAY,
    VISIT,
    hospital_day,
    patient_rows,
    stray_visits,
)
from samplecity.orgs import OrgPlan, select
from samplecity.population import ALIVE, Population, Region
from samplecity.schema import dataset, datasets_for, key_field, public, to_text
from samplecity.volumes import Volumes
from samplecity.writers import EXTENSION, encode, gzip_bytes, write_file

log = logging.getLogger(__name__)

GROUND_TRUTH = "_ground_truth.jsonl"
REGISTRY = "_registry.csv"
CORRECTIONS = "_corrections"
DEATHS_PER_DAY = 150  # whole reference city, scale 1.0
SPECIAL_FORMATS = ("csv_gbk", "csv_bom", "csv_gz", "parquet", "jsonl", "csv_gb18030")


def pool_size(scale: float, hospitals: int) -> int:
    return int(min(8_000_000, max(40_000, 2_500_000 * scale * max(1.0, hospitals / 40))))


def generate(
    out: Path,
    start: dt.date,
    days: int,
    hospitals: int = 40,
    counties: int = 10,
    scale: float = 0.02,
    faults: str = "default",
    seed: int = 7,
) -> dict:
    """Write `days` days of the sample city into the inbox directory `out`.

    Returns a summary: files, rows per dataset, defects by code, timing.
    """
    if faults not in ("default", "none"):
        raise ValueError(f"faults must be 'default' or 'none', not {faults!r}")
    if days < 1 or hospitals < 0 or counties < 0 or scale <= 0:
        raise ValueError("days must be >= 1, hospitals/counties >= 0 and scale > 0")
    began = time.perf_counter()
    out = Path(out)
    _prepare(out)
    orgs = select(hospitals, counties)
    regions = _regions(orgs)
    pop = Population(regions, pool_size(scale, hospitals), start, seed)
    city = City(
        start=start,
        days=days,
        scale=scale,
        seed=seed,
        pop=pop,
        orgs=orgs,
        regions=regions,
        hosp_region={o.org_code: _region_of(regions, o.county_code) for o in orgs.hospitals},
        county_region={o.org_code: _region_of(regions, o.org_code) for o in orgs.counties},
        hosp_size={
            o.org_code: float(
                np.exp(
                    np.random.default_rng([seed, stable_int("size", o.org_code)]).normal(0, 0.25)
                )
            )
            for o in orgs.hospitals
        },
        clinical_coding={
            o.org_code for o in orgs.hospitals if stable_int("icd", o.org_code) % 3 == 0
        },
    )
    formats, styles, manifests = _profiles(city)
    _plan_deaths(city)
    fp = fault_mod.plan(city, formats, enabled=faults == "default")
    volumes = Volumes()
    writer = Writer(out, city, formats, styles, manifests, fp, volumes)
    known = {"hospital": set(datasets_for("hospital")), "county": set(datasets_for("county"))}

    def height(frame: pl.DataFrame) -> int:
        return frame.height

    for d in range(days):
        day = city.day(d)
        for org in orgs.hospitals:
            volume = fp.collapse.get((org.org_code, d), fp.spike.get((org.org_code, d), 1.0))
            if volume == 1.0:
                frames = volumes.steady(
                    org.org_code,
                    day,
                    lambda attempt, org=org, d=d: hospital_day(city, org, d, 1.0, attempt),
                    height,
                )
            else:
                frames = hospital_day(city, org, d, volume)
            text = _as_text(frames, known["hospital"])
            truths = fault_mod.inject(city, fp, org, d, text, formats)
            _update_hospital(city, org.org_code, text)
            writer.write_org_day(org, d, text, truths)
        for org in orgs.counties:
            frames = volumes.steady(
                org.org_code,
                day,
                lambda attempt, org=org, d=d: county_day(city, org, d, attempt),
                height,
                planned=frozenset({DEATH}),
            )
            text = _as_text(frames, known["county"])
            truths = fault_mod.inject(city, fp, org, d, text, formats)
            _update_county(city, org.org_code, text)
            writer.write_org_day(org, d, text, truths)
    writer.write_extras()
    claimed = {
        (t.org_code, t.business_date) for t in writer.truths if t.defect == "volume_collapse"
    }
    for org_code, d in sorted(fp.collapse):
        if (org_code, city.day(d).isoformat()) not in claimed:
            fp.skipped.append("volume_collapse (cannot be told from the organisation's history)")
    spiked = {(t.org_code, t.business_date) for t in writer.truths if t.defect == "volume_spike"}
    for org_code, d in sorted(fp.spike):
        if (org_code, city.day(d).isoformat()) not in spiked:
            fp.skipped.append("volume_spike (cannot be told from the organisation's history)")
    for _, ds, defect in fp.pending:
        fp.skipped.append(f"{ds}.{defect}")

    fixed = epoch(dt.datetime.combine(start, dt.time(0, 0)))
    write_file(out / REGISTRY, registry_csv(orgs.all).encode("utf-8"), fixed)
    truths = sorted(
        writer.truths,
        key=lambda t: (
            t.business_date,
            t.org_code,
            t.dataset,
            t.file or "",
            t.record_key or "",
            t.defect,
        ),
    )
    lines = "".join(json.dumps(t.as_dict(), ensure_ascii=False) + "\n" for t in truths)
    write_file(out / GROUND_TRUTH, lines.encode("utf-8"), fixed)
    seconds = round(time.perf_counter() - began, 2)
    return {
        "out": str(out),
        "start": start.isoformat(),
        "days": days,
        "scale": scale,
        "faults": faults,
        "seed": seed,
        "organisations": {
            "hospital": [o.org_code for o in orgs.hospitals],
            "county": [o.org_code for o in orgs.counties],
        },
        "files": writer.files,
        "corrections": len(writer.corrections),
        "rows": dict(sorted(writer.rows.items())),
        "rows_total": sum(writer.rows.values()),
        "rows_per_day": {k: v for k, v in sorted(writer.rows_by_day.items())},
        "defects": dict(
            sorted(Counter(t.defect for t in truths if not t.defect.startswith("format_")).items())
        ),
        "format_variants": dict(
            sorted(
                Counter(
                    t.defect for t in truths if not t.dimension and t.defect.startswith("format_")
                ).items()
            )
        ),
        "ground_truth": len(truths),
        "skipped_defects": fp.skipped,
        "seconds": seconds,
    }


def apply_corrections(out: Path) -> list[Path]:
    """Move the staged corrected re-uploads into the inbox, keeping their (later) mtimes."""
    out = Path(out)
    root = out / CORRECTIONS
    if not root.is_dir():
        return []
    moved = []
    for src in sorted(p for p in root.rglob("*") if p.is_file()):
        dst = out / src.relative_to(root)
        stat = src.stat()
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.replace(dst)
        os.utime(dst, ns=(stat.st_mtime_ns, stat.st_mtime_ns))
        moved.append(dst)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
    return moved


# --- set-up -------------------------------------------------------------------------------------


def _prepare(out: Path) -> None:
    """An empty directory; output of an earlier run (it has our ground truth) is cleared."""
    if out.exists() and any(out.iterdir()):
        if not (out / GROUND_TRUTH).is_file():
            raise ValueError(f"{out} is not empty and not an earlier sample-city inbox")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _regions(orgs: OrgPlan) -> list[Region]:
    regions = [Region(c.code, c.name, c.old_code, c.population) for c in refdata.XINYANG]
    known = {r.code for r in regions}
    mean = float(np.mean([c.population for c in refdata.XINYANG]))
    for org in orgs.counties:
        if org.org_code not in known:
            regions.append(Region(org.org_code, org.name, None, mean))
            known.add(org.org_code)
    return regions


def _region_of(regions: list[Region], code: str) -> int:
    for i, r in enumerate(regions):
        if r.code == code:
            return i
    return 0


def _profiles(city: City) -> tuple[dict[str, str], dict[str, int], set[str]]:
    """File format, naming style and manifest habit of every organisation."""
    codes = [o.org_code for o in city.orgs.all]
    formats = dict.fromkeys(codes, "csv")
    hospitals = city.orgs.hospitals
    if hospitals or city.orgs.counties:
        smallest = (hospitals or city.orgs.counties)[-1].org_code
        formats[smallest] = "xlsx"
    rest = [c for c in codes if formats[c] == "csv"]
    order = city.rng("formats").permutation(len(rest))
    for fmt, i in zip(SPECIAL_FORMATS, order, strict=False):
        formats[rest[i]] = fmt
    styles = {c: stable_int("style", c) % 3 for c in codes}
    manifests = {c for c in codes if stable_int("manifest", c) % 4 == 0}
    return formats, styles, manifests


def _plan_deaths(city: City) -> None:
    """Who dies when: persons die before or inside the window and leave hospital data then."""
    pop = city.pop
    rng = city.rng("deaths")
    big = [o for o in city.orgs.hospitals if o.level != "primary"] or city.orgs.hospitals
    causes = [c for c, _ in refdata.DEATH_CAUSES]
    cw = np.array([w for _, w in refdata.DEATH_CAUSES], dtype=float)
    places = [p for p, _ in refdata.DEATH_PLACES if p != "1"]
    pw = np.array([w for p, w in refdata.DEATH_PLACES if p != "1"], dtype=float)
    county_of_region = {r: code for code, r in city.county_region.items()}
    for region in range(len(city.regions)):
        local = [o for o in big if city.hosp_region[o.org_code] == region] or big
        for dd in range(-2, city.days):
            n = rng.poisson(DEATHS_PER_DAY * city.scale * city.region_share(region))
            cand = pop.sample(rng, 3 * n + 3, pop.w_mort, region)
            cand = cand[(pop.death_day[cand] == ALIVE) & ~pop.foreign[cand]]
            _, first = np.unique(cand, return_index=True)
            cand = cand[np.sort(first)][:n]
            for person in (int(p) for p in rng.permutation(cand)):
                cause = causes[rng.choice(len(causes), p=cw / cw.sum())]
                in_hospital = (
                    dd >= 0 and bool(local) and cause in IN_HOSPITAL_CAUSES and rng.random() < 0.4
                )
                hospital = local[int(rng.integers(0, len(local)))].org_code if in_hospital else None
                place = "1" if in_hospital else places[rng.choice(len(places), p=pw / pw.sum())]
                reg = dd + int(rng.choice(3, p=[0.6, 0.3, 0.1]))
                registered = reg if 0 <= reg < city.days and region in county_of_region else None
                pop.death_day[person] = dd
                city.deaths[person] = Death(person, dd, registered, cause, place, hospital)
                if hospital:
                    city.ip_deaths.setdefault((hospital, dd), []).append(person)
                if registered is not None:
                    city.death_regs.setdefault((region, registered), []).append(person)


def _as_text(frames: dict[str, pl.DataFrame], known: set[str]) -> dict[str, pl.DataFrame]:
    missing = known - set(frames)
    if missing:
        log.warning("the sample city has no generator for datasets %s", sorted(missing))
    return {name: to_text(frame, name) for name, frame in frames.items() if name in known}


def _update_hospital(city: City, org: str, text: dict[str, pl.DataFrame]) -> None:
    persons = text[PATIENT]["_person"].to_numpy()
    city.uploaded[org] = np.union1d(city.uploaded[org], persons[persons >= 0])
    if STAY in text:
        times = [
            pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).dt.epoch("s")
            for c in ("admit_time", "discharge_time")
        ]
        stays = text[STAY].select("_person", *times, "admission_id").drop_nulls()
        for person, admit, discharge, key in stays.iter_rows():
            last = city.last_stay.get(person)
            if person >= 0 and (last is None or discharge >= last[2]):
                city.last_stay[person] = (org, admit, discharge, key)
    for disease in CHRONIC:
        hits = []
        if VISIT in text:
            v = text[VISIT]
            hits.append(
                v.filter(pl.col("diagnosis_code").fill_null("").str.starts_with(disease))["_person"]
            )
        if STAY in text:
            s = text[STAY]
            hits.append(
                s.filter(
                    pl.col("principal_dx_code").fill_null("").str.starts_with(disease)
                    | pl.col("other_dx_codes").fill_null("").str.contains(disease, literal=True)
                )["_person"]
            )
        p = np.concatenate([h.to_numpy() for h in hits]) if hits else np.zeros(0, np.int64)
        p = p[p >= 0]
        p = p[~city.pop.tainted[p]]
        city.support[disease][p] = True


def _update_county(city: City, org: str, text: dict[str, pl.DataFrame]) -> None:
    rec = text[RECORD]["_person"].to_numpy()
    city.records[org] = np.union1d(city.records[org], rec)
    fu = text[FOLLOWUP]
    for disease in CHRONIC:
        city.followed[disease][
            fu.filter(pl.col("disease_code") == disease)["_person"].to_numpy()
        ] = True
    city.checked[text[ELDERLY_DS]["_person"].to_numpy()] = True


# --- writing ------------------------------------------------------------------------------------


def _droppable_column(name: str) -> str:
    spec = dataset(name)
    for preferred in ("drug_name", "item_name", "dept_name", "name"):
        if preferred in spec.by_name and spec.by_name[preferred].required:
            return preferred
    skip = set(spec.key) | {spec.event}
    return next(f for f in spec.required_fields if f not in skip)


class Writer:
    def __init__(
        self,
        out: Path,
        city: City,
        formats: dict[str, str],
        styles: dict[str, int],
        manifests: set[str],
        fp: FaultPlan,
        volumes: Volumes,
    ):
        self.out, self.city, self.formats, self.styles = out, city, formats, styles
        self.manifests, self.fp, self.volumes = manifests, fp, volumes
        self.truths: list[Truth] = []
        self.files = 0
        self.rows: Counter = Counter()
        self.rows_by_day: Counter = Counter()
        self.corrections: list[Path] = []

    # names and times ------------------------------------------------------------------------

    def _stem(self, org: str, name: str, day: dt.date, part: int) -> str:
        style = self.styles.get(org, 0)
        if style == 2:
            return f"part-{part:05d}"
        base = f"{name}_{day:%Y%m%d}" if style == 0 else f"{org[-6:]}_{name.upper()}_{day:%Y%m%d}"
        return base if part == 1 else f"{base}_{part}"

    def _times(self, kind: str, day: dt.date, rng: np.random.Generator, late: bool) -> dt.datetime:
        due = deadline(kind, day)
        if late:
            return due + dt.timedelta(seconds=int(rng.integers(3600, 6 * 3600)))
        next_day = day + dt.timedelta(days=1)
        lo = dt.datetime.combine(next_day, dt.time(0, 5))
        hi = min(due - dt.timedelta(minutes=30), dt.datetime.combine(next_day, dt.time(7, 30)))
        if kind == "county" and due.date() > next_day and rng.random() < 0.5:
            lo = dt.datetime.combine(due.date(), dt.time(5, 0))
            hi = due - dt.timedelta(minutes=30)
        if hi <= lo:
            lo = hi - dt.timedelta(hours=1)
        span = int((hi - lo).total_seconds())
        return lo + dt.timedelta(seconds=int(rng.integers(0, span)))

    def _write(self, rel: str, data: bytes, when: dt.datetime, staged: bool = False) -> None:
        root = self.out / CORRECTIONS if staged else self.out
        path = root / rel
        write_file(path, data, epoch(when))
        if staged:
            self.corrections.append(path)
        elif not rel.endswith(MANIFEST):
            self.files += 1

    def _truth(
        self,
        org: str,
        name: str,
        day: dt.date,
        file: str | None,
        defect: str,
        detail: str,
        key: str | None = None,
    ) -> None:
        dimension, expected = FILE_FAULTS[defect]
        self.truths.append(
            Truth(org, name, day.isoformat(), file, key, dimension, defect, detail, expected)
        )

    # batches --------------------------------------------------------------------------------

    def write_org_day(
        self, org, d: int, frames: dict[str, pl.DataFrame], truths: list[Truth]
    ) -> None:
        names = datasets_for(org.kind)
        for name in names:
            if name in frames:
                mine = [t for t in truths if t.dataset == name]
                self.write_batch(org, name, d, frames[name], mine)
        # what these rows prove against another organisation (a county that did not register
        # an in-hospital death) is in no file of this one
        self.truths += [t for t in truths if t.dataset not in names]

    def write_batch(
        self, org, name: str, d: int, text: pl.DataFrame, record_truths: list[Truth]
    ) -> None:
        code = org.org_code
        city = self.city
        day = city.day(d)
        faults = self.fp.batch_faults(code, name, d)
        rng = city.rng("write", code, name, d)
        fmt = self.formats.get(code, "csv")
        folder = f"{code}/{name}/{day.isoformat()}"
        frame = public(text)
        bad_rows = self.fp.bad_rows.get((code, name, d), {})
        if "missing_batch" in faults:
            self._truth(code, name, day, None, "missing_batch", "the expected batch never arrived")
            return
        if "extra_column" in faults:
            remark = ["复诊" if u < 0.2 else None for u in rng.random(frame.height)]
            frame = frame.with_columns(pl.Series("remark", remark, dtype=pl.String))
        dropped = None
        if "missing_required_column" in faults:
            dropped = _droppable_column(name)
            frame = frame.drop(dropped)

        # split into files
        n = frame.height
        pieces = 2 if (self.styles.get(code) == 2 and n >= 200) or "corrupt_gzip" in faults else 1
        cut = [0, *([n // 2] if pieces == 2 else []), n]
        when = self._times(org.kind, day, rng, late="late_file" in faults)
        written: list[tuple[str, pl.DataFrame]] = []
        received = 0  # rows ingestion reads from the first delivery
        for i in range(pieces):
            part = frame.slice(cut[i], cut[i + 1] - cut[i])
            rows = {r - cut[i]: v for r, v in bad_rows.items() if cut[i] <= r < cut[i + 1]}
            corrupt = "corrupt_gzip" in faults and i == pieces - 1
            ext = ".csv.gz" if corrupt else EXTENSION[fmt]
            rel = f"{folder}/{self._stem(code, name, day, i + 1)}{ext}"
            t = when + dt.timedelta(seconds=7 * i)
            if corrupt:
                good = gzip_bytes(part.write_csv(line_terminator="\n").encode("utf-8"))
                self._write(rel, good[: max(12, len(good) // 2)] + b"\x00\x00corrupt", t)
                self._truth(
                    code,
                    name,
                    day,
                    rel,
                    "corrupt_gzip",
                    f"truncated gzip stream; {part.height} rows cannot be read",
                )
                continue
            if "corrected_reupload" in faults and i == pieces - 1 and part.height == 0:
                self.fp.skipped.append(f"{name}.corrected_reupload (empty batch)")
            if "corrected_reupload" in faults and i == pieces - 1 and part.height:
                keep = max(0, part.height - max(1, part.height // 10))
                self._write(rel, encode(part.head(keep), fmt), t)
                received += keep
                due = deadline(org.kind, day)
                fix_time = max(due - dt.timedelta(minutes=20), t + dt.timedelta(minutes=1))
                self._write(rel, encode(part, fmt), fix_time, staged=True)
                self._truth(
                    code,
                    name,
                    day,
                    rel,
                    "corrected_reupload",
                    f"first upload had {keep} of {part.height} rows; the corrected file "
                    f"is staged in {CORRECTIONS}/",
                )
                self._count(name, d, part.height)
            else:
                self._write(rel, encode(part, fmt, rows or None), t)
                self._count(name, d, part.height)
                received += part.height
            written.append((rel, part))
            if fmt != "csv":
                self.truths.append(
                    Truth(
                        code,
                        name,
                        day.isoformat(),
                        rel,
                        None,
                        None,
                        f"format_{fmt}",
                        f"allowed format variant {fmt}",
                        "loaded",
                    )
                )
            for fault, detail in (
                ("late_file", f"received after the deadline {deadline(org.kind, day)}"),
                ("extra_column", "unknown column 'remark' after the standard's fields"),
                ("missing_required_column", f"required column {dropped!r} is absent"),
            ):
                if fault in faults:
                    self._truth(code, name, day, rel, fault, detail)

        if "duplicate_file" in faults and written:
            rel, part = written[0]
            stem, ext = rel.rsplit("/", 1)[1].split(".", 1)
            copy = f"{folder}/{stem}_copy.{ext}"
            due = deadline(org.kind, day)
            t = min(when + dt.timedelta(minutes=10), due - dt.timedelta(minutes=1))
            self._write(
                copy, (self.out / rel).read_bytes(), max(t, when + dt.timedelta(seconds=30))
            )
            self._truth(code, name, day, copy, "duplicate_file", f"byte-identical copy of {rel}")

        manifest_fault = "manifest_row_count_mismatch" in faults
        if manifest_fault or (code in self.manifests and not faults):
            count = sum(p.height for _, p in written)
            claimed = count + max(3, count // 20) if manifest_fault else count
            rel = f"{folder}/{MANIFEST}"
            body = json.dumps({"row_count": claimed, "schema_version": "1"}) + "\n"
            self._write(rel, body.encode("utf-8"), when + dt.timedelta(seconds=7 * pieces + 1))
            if manifest_fault:
                self._truth(
                    code,
                    name,
                    day,
                    rel,
                    "manifest_row_count_mismatch",
                    f"manifest says {claimed} rows, the files hold {count}",
                )

        self._judge_volume(code, name, day, received, frame.height, faults)
        key = key_field(name)
        for t in record_truths:
            t.file = next(
                (rel for rel, part in written if t.record_key in set(part[key].to_list())), None
            )
            self.truths.append(t)

    def _judge_volume(
        self, code: str, name: str, day: dt.date, received: int, rows: int, faults: list[str]
    ) -> None:
        """List the batch as a volume collapse exactly when the volume rule fails on what is
        received; a collapse that cannot be told from this organisation's history is not
        claimed (see volumes.py)."""
        _, failed, note = self.volumes.judge(code, name, day, received)
        _, spiked, spike_note = self.volumes.judge_spike(code, name, day, received)
        self.volumes.record(code, name, day, received)
        if spiked:
            detail = (
                f"{received} rows, several times this organisation's usual volume"
                if "volume_spike" in faults
                else f"{received} rows on an unusually busy day"
            )
            self._truth(code, name, day, None, "volume_spike", f"{detail}: {spike_note}")
        if not failed:
            return
        if "volume_collapse" in faults:
            detail = f"{received} rows, about a tenth of this organisation's usual volume"
        elif received < rows:
            detail = f"only {received} of {rows} rows can be read"
        else:
            detail = f"{received} rows on an unusually quiet day"
        self._truth(code, name, day, None, "volume_collapse", f"{detail}: {note}")

    def _count(self, name: str, d: int, rows: int) -> None:
        self.rows[name] += rows
        self.rows_by_day[self.city.day(d).isoformat()] += rows

    # uploads that ingestion must reject ------------------------------------------------------

    def write_extras(self) -> None:
        city = self.city
        for fault, code, name, d in self.fp.extras:
            day = city.day(d)
            rng = city.rng("extra", fault, d)
            kind = "county" if fault == "wrong_org_kind" else "hospital"
            when = self._times(kind, day, rng, late=False)
            rel = f"{code}/{name}/{day.isoformat()}/{name}_{day:%Y%m%d}.csv"
            if fault == "unregistered_org":
                persons = city.pop.sample(rng, 20, city.pop.w_out)
                persons = np.unique(persons[city.pop.usable(persons, d)])
                secs = np.full(len(persons), (day - dt.date(1970, 1, 1)).days * 86400 + 9 * 3600)
                frame = public(to_text(patient_rows(city, code, persons, secs), PATIENT))
                detail = f"{code} is a valid-looking USCC that is not in the registry"
            elif fault == "unknown_dataset":
                frame = _drug_stock(day, rng)
                detail = f"dataset folder {name!r} is not defined by the standard"
            else:
                frame = public(to_text(stray_visits(city, code, d, 15, rng), VISIT))
                detail = f"county platform {code} uploaded the hospital dataset {name}"
            self._write(rel, frame.write_csv(line_terminator="\n").encode("utf-8"), when)
            self._truth(code, name, day, rel, fault, detail)


def _drug_stock(day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    drugs = refdata.DRUGS[:12]
    return pl.DataFrame(
        {
            "drug_code": [d.code for d in drugs],
            "drug_name": [d.name for d in drugs],
            "stock_qty": [str(int(q)) for q in rng.integers(10, 900, len(drugs))],
            "updated_at": [f"{day.isoformat()} 22:00:00"] * len(drugs),
        }
    )
