"""`make bench`: how fast and how lean a city-day is, at several scales, side by side.

    python -m bench.run [--scales 0.25,1,4] [--history-days 7] [--quick] [--profile]

For every scale, in a fresh process with its own HQLAKE_HOME (bench/cityday.py): generate
the history days and the measured business date, ingest, validate and score the history,
build the marts, then measure the daily run of the measured date stage by stage, and the
same validation two other ways on the same batches with the same rules: (a) plain Great
Expectations on pandas per batch (bench/gx_pandas.py), (b) the SQL lower bound, one
hand-written pass per dataset (expectations.engines.sqlrules.run_dataset). Then the incremental dbt
build of the 1 M-row day on top of 1 and 4 weeks of history.

Writes bench/results/<date>-<scale>.json (with the machine, /proc/loadavg before and after
and the git commit) and <date>-summary.md, and prints the markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import loadavg, machine
from bench.profile import markdown as profile_markdown
from bench.profile import summarise

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 16)  # a Monday, after the sample city's demo week
PROFILE_RATE = 50
TABLE_STAGES = (
    ("plan", "plan (inbox listing)"),
    ("ingest", "ingest (files → lake + raw)"),
    ("late", "late arrivals (7 dates re-listed)"),
    ("validate", "validation, all rules + Data Docs"),
    ("score", "scoring and ranks"),
    ("build", "dbt build, incremental"),
    ("report", "reports (HTML)"),
    ("feedback", "feedback e-mails"),
    ("daily_run", "**whole daily run**"),
    ("sql_lower_bound", "(b) SQL lower bound"),
    ("gx_pandas", "(a) GX pandas per batch"),
)


def _label(scale: float) -> str:
    return f"{scale:g}".replace(".", "_")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work.resolve()
        self.results: Path = args.results.resolve()
        self.results.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.stamp = dt.date.today().isoformat()
        self.python = sys.executable

    def _run(self, name: str, argv: list[str], home: Path | None, profile: Path | None) -> dict:
        """Run `python -m bench.cityday ARGV` in a child process; its JSON result."""
        out = self.work / f"{name}.json"
        out.unlink(missing_ok=True)
        command = [self.python, "-m", "bench.cityday", *argv, "--json", str(out)]
        if profile is not None:
            spy = Path(self.python).with_name("py-spy")
            command = [
                str(spy), "record", "--idle", "--format", "raw", "--rate", str(PROFILE_RATE),
                "--output", str(profile), "--", *command,
            ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if home is not None:
            if home.exists():
                shutil.rmtree(home)
            home.mkdir(parents=True)
            env["HQLAKE_HOME"] = str(home)
            for var in ("HQLAKE_S3_ENDPOINT", "HQLAKE_CLICKHOUSE_URL", "HQLAKE_ORG_REGISTRY"):
                env.pop(var, None)
        log = self.work / f"{name}.log"
        with log.open("w") as err:
            done = subprocess.run(command, cwd=ROOT, env=env, stderr=err, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"bench step {name} failed ({done.returncode}); log {log}:\n{tail}")
        return json.loads(out.read_text())

    def generate(self, scale: float, start: dt.date, days: int) -> tuple[Path, dict]:
        a = self.args
        name = f"s{_label(scale)}-{start}-{days}d-h{a.hospitals}c{a.counties}"
        inbox = self.work / "inbox" / name
        started = time.perf_counter()
        summary = self._run(
            f"generate-{inbox.name}",
            [
                "generate", "--out", str(inbox), "--start", start.isoformat(),
                "--days", str(days), "--scale", str(scale), "--seed", str(a.seed),
                "--hospitals", str(a.hospitals), "--counties", str(a.counties),
            ],
            None,
            None,
        )  # fmt: skip
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        how = "reused" if summary.get("reused") else f"generated in {summary['seconds']}s"
        print(
            f"[scale {scale:g}] inbox {inbox.name}: {summary['rows_total']:,} rows ({how})",
            flush=True,
        )
        return inbox, summary

    def history_for(self, scale: float) -> int:
        a = self.args
        if a.largest_history_days is not None and scale == max(a.scale_list):
            return a.largest_history_days
        return a.history_days

    def scale(self, scale: float) -> dict:
        a = self.args
        history = self.history_for(scale)
        inbox, generated = self.generate(scale, a.day - dt.timedelta(days=history), history + 1)
        before = loadavg()
        started = time.perf_counter()
        profile = self.work / f"profile-s{_label(scale)}.txt" if a.profile else None
        argv = [
            "scale", "--inbox", str(inbox), "--day", a.day.isoformat(),
            "--history", str(history), "--scale", str(scale), "--repeats", str(a.repeats),
            "--skip", a.skip,
        ]  # fmt: skip
        if a.no_gx:
            argv.append("--no-gx")
        home = self.work / f"home-s{_label(scale)}"
        result = self._run(f"scale-{_label(scale)}", argv, home, profile)
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        result["loadavg_before"], result["loadavg_after"] = before, loadavg()
        result["generated"] = generated
        result["machine"] = machine()
        result["profiled"] = bool(profile)
        result["label"] = a.label
        if profile is not None and profile.is_file():
            result["profile"] = summarise(profile, PROFILE_RATE)
            result["profile_raw"] = str(profile)
        path = self.results / f"{self.stamp}-{_label(scale)}.json"
        path.write_text(json.dumps(result, indent=1, default=str, ensure_ascii=False))
        return result

    def dbt_history(self) -> dict | None:
        a = self.args
        if not a.dbt_history or importlib.util.find_spec("infra.dbtrun") is None:
            return None
        if "build" in a.skip.split(","):
            return None
        lengths = sorted(int(n) for n in a.dbt_history.split(","))
        longest = lengths[-1]
        # The measured day's files: the inbox of that scale's own run (reused).
        days = self.history_for(a.dbt_day_scale)
        day_inbox, _ = self.generate(a.dbt_day_scale, a.day - dt.timedelta(days=days), days + 1)
        history_inbox, _ = self.generate(
            a.dbt_history_scale, a.day - dt.timedelta(days=longest), longest
        )
        runs = []
        for n in lengths:
            before = loadavg()
            result = self._run(
                f"dbt-history-{n}",
                [
                    "dbt-history", "--history-inbox", str(history_inbox),
                    "--day-inbox", str(day_inbox), "--day", a.day.isoformat(),
                    "--history", str(n),
                ],
                self.work / f"home-dbt-{n}",
                None,
            )  # fmt: skip
            result["loadavg_before"], result["loadavg_after"] = before, loadavg()
            runs.append(result)
        out = {
            "label": a.label,
            "day_scale": a.dbt_day_scale,
            "history_scale": a.dbt_history_scale,
            "machine": machine(),
            "runs": runs,
        }
        path = self.results / f"{self.stamp}-dbt-history.json"
        path.write_text(json.dumps(out, indent=1, default=str, ensure_ascii=False))
        return out


# ----------------------------------------------------------------------------- the table


def _stage(result: dict, name: str) -> dict | None:
    for s in result["stages"]:
        if s["name"] == name:
            return s
    return None


def _cell(stage: dict | None) -> list[str]:
    if stage is None or not stage.get("available", True):
        return ["n/a", "", ""]
    rate = f"{stage['rows_per_second']:,}" if stage.get("rows_per_second") else ""
    return [f"{stage['seconds']:.1f} s", rate, f"{stage['peak_rss_mib']:,.0f}"]


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def table(results: list[dict]) -> str:
    """Stage × scale: time, rows/s, peak resident memory; then the ratios."""
    head = ["stage"]
    for r in results:
        rows = next((s["rows"] for s in r["stages"] if s["name"] == "ingest"), None) or 0
        head += [f"{r['scale']:g} ({rows / 1e6:.2f} M rows): time", "rows/s", "peak MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, title in TABLE_STAGES:
        cells = [title]
        for r in results:
            cells += _cell(_stage(r, name))
        lines.append("| " + " | ".join(cells) + " |")
    for key, title in (
        ("validate_over_gx_pandas", "validation (no Data Docs) ÷ GX-pandas"),
        ("validate_over_sql", "validation (no Data Docs) ÷ SQL lower bound"),
        ("validate_v11_over_v10", "validation with section 7's rules ÷ without them"),
        ("validate_v11_over_v10_cpu", "the same in process CPU seconds"),
        ("row_rules_over_sql", "row-rule stage ÷ SQL lower bound"),
    ):
        cells = [title]
        for r in results:
            cells += [_ratio(r["ratios"].get(key)), "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["process peak RSS incl. history load (MiB)"]
    for r in results:
        cells += [f"{r['process_peak_rss_mib']:,.0f}", "", ""]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(results: list[dict]) -> str:
    lines = []
    for r in results:
        gx = _stage(r, "gx_pandas")
        gx_detail = (gx or {}).get("detail") or {}
        agree = gx_detail.get("agreement") or {}
        missing = [s["name"] for s in r["stages"] if not s.get("available", True)]
        ingest = (_stage(r, "ingest") or {}).get("detail", {})
        lines.append(
            f"- scale {r['scale']:g}: {r['history_days']} history days"
            f" ({r['history'].get('ingest', {}).get('rows', 0):,} rows);"
            f" largest batch {ingest.get('largest_batch_rows', 0):,} rows,"
            f" largest dataset-day {max(r['dataset_day_rows'].values(), default=0):,} rows;"
            f" GX expressed {gx_detail.get('rules_expressible', '?')} of"
            f" {gx_detail.get('rules_total', '?')} row rules, its counts equal ours on"
            f" {agree.get('equal', '?')} of {agree.get('compared', '?')} batch-rules;"
            f" validation tries {r['validation_tries']};"
            f" CPU of the alternated v1.0 / v1.1 tries {r.get('validation_cpu_tries')};"
            f" SeaweedFS RSS {r.get('weed_rss_mib')} MiB (a child process, not included);"
            f" loadavg {r['loadavg_before']} → {r['loadavg_after']};"
            f" worker wall {r['wall_seconds']} s"
            + (f"; not available: {', '.join(missing)}" if missing else "")
        )
    return "\n".join(lines)


def load_baseline(folder: Path | None) -> tuple[dict[float, dict], dict | None]:
    """An earlier run's results (`--baseline`, a folder of bench/results/): per scale, and
    its dbt-history experiment."""
    scales: dict[float, dict] = {}
    history = None
    if folder is None or not folder.is_dir():
        return scales, history
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name.endswith("-dbt-history.json"):
            history = data
        elif "scale" in data and "stages" in data:
            scales[float(data["scale"])] = data
    return scales, history


def _peak(result: dict | None, name: str) -> str:
    stage = _stage(result, name) if result else None
    if not stage or not stage.get("available", True):
        return "n/a"
    cpu = f", {stage['cpu_seconds']:.0f} s CPU" if stage.get("cpu_seconds") else ""
    return f"{stage['peak_rss_mib']:,.0f} MiB ({stage['seconds']:.0f} s{cpu})"


def _incremental(out: dict | None) -> dict[int, float]:
    if not out:
        return {}
    return {
        r["history_days"]: _stage(r, "build_incremental")["seconds"]
        for r in out["runs"]
        if r.get("stages") and _stage(r, "build_incremental")
    }


def targets(
    results: list[dict], history_runs: dict | None, baseline: tuple[dict, dict | None], name: str
) -> str:
    """Issue 16's two open targets, this run beside the baseline's figures: the daily run's
    peak memory per scale (not growing beyond the largest batch), and the incremental dbt
    build of a day between the shortest and longest history (within 10 %)."""
    scales, base_history = baseline
    lines = [
        f"Open targets, this run beside {name}:",
        "",
        "| scale | history days (baseline / now) | largest batch rows | daily-run peak, baseline"
        " | daily-run peak, now | validation peak, baseline | now | dbt build peak, baseline"
        " | now |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = scales.get(float(r["scale"]))
        largest = ((_stage(r, "ingest") or {}).get("detail") or {}).get("largest_batch_rows", 0)
        lines.append(
            f"| {r['scale']:g} | {b['history_days'] if b else 'n/a'} / {r['history_days']} |"
            f" {largest:,} | {_peak(b, 'daily_run')} | {_peak(r, 'daily_run')} |"
            f" {_peak(b, 'validate')} | {_peak(r, 'validate')} |"
            f" {_peak(b, 'build')} | {_peak(r, 'build')} |"
        )
    for label, out in (("baseline", base_history), ("now", history_runs)):
        builds = _incremental(out)
        if len(builds) >= 2:
            short, long = min(builds), max(builds)
            growth = builds[long] / builds[short] - 1
            lines.append(
                f"\nIncremental dbt build of the day, {label}: {builds[short]:.1f} s on"
                f" {short} days of history, {builds[long]:.1f} s on {long} days:"
                f" {growth:+.0%} (target within 10 %: {'met' if growth <= 0.10 else 'not met'})."
            )
    return "\n".join(lines)


def dbt_table(out: dict) -> str:
    lines = [
        f"Incremental dbt build of the {out['day_scale']:g}-scale day on top of history"
        f" generated at scale {out['history_scale']:g}:",
        "",
        "| history | history rows | full build of history | incremental build of the day"
        " | re-run, nothing new | build peak MiB | validation of the day |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["runs"]:
        if not r.get("stages"):
            lines.append(f"| {r['history_days']} days | n/a: {r.get('note', '')} | | | | | |")
            continue
        s = {x["name"]: x for x in r["stages"]}
        lines.append(
            f"| {r['history_days']} days | {r['history_rows']:,} |"
            f" {r['history']['build_full']['seconds']:.1f} s |"
            f" {s['build_incremental']['seconds']:.1f} s |"
            f" {s['build_nothing_new']['seconds']:.1f} s |"
            f" {s['build_incremental']['peak_rss_mib']:,.0f} |"
            f" {s['validate']['seconds']:.1f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", help="comma-separated generator scales (1 = ~1 M rows/day)")
    parser.add_argument("--history-days", type=int)
    parser.add_argument(
        "--largest-history-days",
        type=int,
        help="fewer history days for the largest scale (documented in the output)",
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument("--quick", action="store_true", help="tiny scales to try the bench")
    parser.add_argument("--profile", action="store_true", help="record each scale with py-spy")
    parser.add_argument("--no-gx", action="store_true", help="leave out the GX-pandas way")
    parser.add_argument(
        "--skip", default="", help="daily-run stages to leave out, e.g. build,report"
    )
    parser.add_argument("--repeats", type=int, help="validation / SQL alternations (best kept)")
    parser.add_argument("--dbt-history", help="history lengths in days, e.g. 7,28 ('' = none)")
    parser.add_argument("--dbt-history-scale", type=float, default=0.25)
    parser.add_argument("--dbt-day-scale", type=float, default=1.0)
    parser.add_argument("--hospitals", type=int, default=40)
    parser.add_argument("--counties", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=ROOT / ".hqlake" / "bench")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--label", default="", help="what this run is, kept in the results")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=ROOT / "bench" / "results" / "after-incremental",
        help="earlier results shown beside this run's open targets",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.scales = "0.01,0.02" if args.scales is None else args.scales
        args.history_days = 2 if args.history_days is None else args.history_days
        args.repeats = args.repeats or 1
        args.dbt_history = "1,2" if args.dbt_history is None else args.dbt_history
        args.dbt_history_scale = min(args.dbt_history_scale, 0.01)
        args.dbt_day_scale = 0.02 if args.dbt_day_scale == 1.0 else args.dbt_day_scale
        args.results = args.results or args.work / "results-quick"
    args.scales = "0.25,1,4" if args.scales is None else args.scales
    args.history_days = 7 if args.history_days is None else args.history_days
    args.repeats = args.repeats or 2
    args.dbt_history = "7,28" if args.dbt_history is None else args.dbt_history
    args.results = args.results or ROOT / "bench" / "results"
    scales = args.scale_list = sorted(float(s) for s in args.scales.split(",") if s.strip())

    bench = Bench(args)
    started = time.perf_counter()
    load_start = loadavg()
    results = []
    for scale in scales:
        results.append(bench.scale(scale))
    history_runs = bench.dbt_history()
    elapsed = time.perf_counter() - started

    text = [
        f"## hqlake bench {bench.stamp}: business date {args.day}, scales"
        f" {', '.join(f'{s:g}' for s in scales) or 'none'}"
        + (f" ({args.label})" if args.label else "")
    ]
    if results:
        text += ["", table(results), "", notes(results)]
    if history_runs:
        text += ["", dbt_table(history_runs)]
    baseline = load_baseline(args.baseline)
    if results and (baseline[0] or baseline[1]):
        text += ["", targets(results, history_runs, baseline, str(args.baseline))]
    for r in results:
        if r.get("profile"):
            text += ["", f"Profile of scale {r['scale']:g} (py-spy, main thread):", ""]
            text.append(profile_markdown(r["profile"]))
    m = results[0]["machine"] if results else machine()
    text += [
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python"
        f" {m['python']}, commit {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''};"
        f" loadavg {load_start} at start, {loadavg()} at end; bench took {elapsed / 60:.1f} min.",
    ]
    summary = "\n".join(text)
    (bench.results / f"{bench.stamp}-summary.md").write_text(summary + "\n")
    print()
    print(summary)
    return results


if __name__ == "__main__":
    main()
