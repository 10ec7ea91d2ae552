"""`dpsim` command line: run, compare, validate, schema, trace, sweep, capacity, plan."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from dpsim import api
from dpsim.api import check_trace_file, load_scenario
from dpsim.cli.plan import COMMANDS as _PLANNING  # sweep, capacity, plan
from dpsim.cli.reproduce import COMMANDS as _REPRODUCE  # reproduce, validation-report, compare-points
from dpsim.cli.trace import trace
from dpsim.metrics.export import aiperf_profile, vllm_bench_serve
from dpsim.metrics.results import Result
from dpsim.metrics.runs import stored_run
from dpsim.metrics.timeline import write_timeline
from dpsim.planning.seeds import METHOD, interval, seed_list, summarise
from dpsim.planning.seeds import fmt as fmt_interval
from dpsim.planning.sweep import flatten
from dpsim.scenario.config import ScenarioError, scenario_json_schema
from dpsim.viz.report import ReportError
from dpsim.viz.tables import fmt as _fmt
from dpsim.viz.tables import interval_table
from dpsim.viz.tables import summary_table as _table
from dpsim.workload.format import TraceError


def _fail(message: str, status: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def _load(path: str, sets: tuple[str, ...], profiles: tuple[str, ...] = (), strict: bool = False):
    """The validated scenario; its plausibility warnings go to stderr (errors with `strict`)."""
    try:
        scenario = load_scenario(path, list(sets), list(profiles))
    except ScenarioError as exc:
        _fail(str(exc))
    for warning in scenario.warnings:
        if strict:
            _fail(f"{warning} (--strict)")
        click.echo(f"warning: {warning}", err=True)
    return scenario


_strict = click.option("--strict", is_flag=True, help="treat plausibility warnings (e.g. a NIC under 1 Gbps) as errors")


def _run(scenario, progress=None):
    try:
        result = api.run(scenario, progress=progress)
    except (api.SimulationError, ScenarioError) as exc:
        _fail(f"{scenario.source_path}: {exc}")
    except TraceError as exc:  # trace readers raise their own located errors
        _fail(str(exc))
    if result.summary["turns"] == 0 and scenario.run.max_sim_time is not None:
        _fail(f"{scenario.source_path}: run.max_sim_time = {scenario.run.max_sim_time:g} s ended the run before "
              "any turn finished; give it more time or leave it unset")
    return result



PROGRESS = click.option("--progress/--no-progress", default=None,
                        help="a bar on stderr: turns done, simulated time, ETA (default: run.progress, "
                             "else when stderr is a terminal)")


INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE of sysexits.h


class _Commands(click.Group):
    """The command group, with a last resort: an exception no command turned into a located error
    is a dpsim bug, reported in one line (DPSIM_TRACEBACK=1 shows the traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("DPSIM_TRACEBACK"):
                raise
            text = str(exc).strip().splitlines()
            _fail(f"internal error ({type(exc).__name__}{': ' + text[0] if text else ''}); please report it "
                  f"with the command line (DPSIM_TRACEBACK=1 shows where)", INTERNAL_ERROR_EXIT)


@click.group(cls=_Commands)
@click.version_option(package_name="dpsim")
def main() -> None:
    """dpsim: simulate PD-disaggregated LLM serving with DualPath KV loading."""


def _seeds(sc, count: int) -> list[int]:
    try:
        return seed_list(sc.run.seed, count)
    except ValueError as exc:
        _fail(str(exc))


def _intervals(summaries: list[dict]) -> dict[str, dict]:
    return summarise([flatten(s) for s in summaries])


def _write_seeds(out_dir: Path, seeds: list[int], intervals: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "seeds.json").write_text(json.dumps({"method": METHOD, "seeds": seeds, "intervals": intervals},
                                                   indent=2) + "\n")


SEEDS = click.option("--seeds", "seed_count", type=int, default=1, show_default=True,
                     help="run seeds run.seed .. run.seed+N-1 and give each result's mean and 95 % interval "
                          "(Student t over seeds)")


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--set", "sets", multiple=True, help="override a field: --set workload.agents=1024")
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--out", type=click.Path(), default=None, help="output folder (default runs/<name>)")
@click.option("--no-plots", is_flag=True, help="skip the PNG figures")
@click.option("--timeline", is_flag=True, help="also write timeline.json: requests per engine and link "
                                                  "utilisation as a Chrome/Perfetto trace")
@PROGRESS
@SEEDS
@_strict
def run(scenario, sets, profiles, out, no_plots, timeline, progress, seed_count, strict):
    """Simulate SCENARIO; print a summary, write summary.json, run.json, turns/links parquet, plots
    (with --seeds N: one folder OUT/seed-S/ per seed and OUT/seeds.json with the intervals)."""
    sc = _load(scenario, sets, profiles, strict)
    seeds = _seeds(sc, seed_count)
    out_dir = Path(out or Path("runs") / sc.name)
    results = {}
    for seed in seeds:
        several = len(seeds) > 1
        result = _run(api.with_overrides(sc, run={"seed": seed}) if several else sc, progress)
        folder = out_dir / f"seed-{seed}" if several else out_dir
        try:
            result.write(folder)
            if timeline:
                write_timeline(result, folder / "timeline.json")
            if not no_plots:
                from dpsim.viz.plots import write_run_plots
                write_run_plots(result, folder, sc.slo.ttft)
        except OSError as exc:
            _fail(f"--out {folder}: cannot write ({exc.strerror or exc})")
        results[seed] = result
    first = next(iter(results.values()))
    click.echo(f"{sc.name}: {sc.model.name} {first.summary['layout']}, {first.summary['agents']} agents, "
               f"{sc.policy.system}")
    click.echo(f"hardware: {first.run_info['hardware_profile']}")
    if len(seeds) == 1:
        click.echo(_table({sc.policy.system: first.summary}))
    else:
        intervals = _intervals([r.summary for r in results.values()])
        _write_seeds(out_dir, seeds, intervals)
        click.echo(interval_table({sc.policy.system: intervals}, seeds))
    wall_s = sum(r.run_info["wall_s"] for r in results.values())
    click.echo(f"wrote {out_dir}/ ({'seed-*/: ' if len(seeds) > 1 else ''}summary.json, run.json, turns.parquet, "
               f"links.parquet{', plots' if not no_plots else ''}{', timeline.json' if timeline else ''}"
               f"{'; seeds.json' if len(seeds) > 1 else ''}) "
               f"in {wall_s:.1f} s wall")
    failures = [f for r in results.values() for f in r.invariant_failures]
    if failures:
        click.echo("invariant failures:\n  " + "\n  ".join(failures), err=True)
        sys.exit(1)


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--policies", default="basic,dualpath,oracle", show_default=True)
@click.option("--set", "sets", multiple=True)
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--out", type=click.Path(), default=None,
              help="write each run under OUT/<policy>/ (OUT/<policy>/seed-S/) as soon as it finishes")
@click.option("--resume", is_flag=True, help="reuse the finished runs in --out; simulate only the missing ones")
@PROGRESS
@SEEDS
@_strict
def compare(scenario, policies, sets, profiles, out, resume, progress, seed_count, strict):
    """Run SCENARIO under each policy.system and print them side by side with speed-ups."""
    sc = _load(scenario, sets, profiles, strict)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        _fail(f"--policies {policies!r}: no system given; expected a comma-separated list of basic, dualpath, oracle")
    bad = [p for p in names if p not in ("basic", "dualpath", "oracle")]
    if bad:
        _fail(f"--policies: unknown system {bad[0]!r}; expected basic, dualpath or oracle")
    if resume and not out:
        _fail("--resume needs --out (the folder of the interrupted compare)")
    seeds = _seeds(sc, seed_count)
    several = len(seeds) > 1
    workloads = {}
    runs: dict[str, dict[int, object]] = {name: {} for name in names}
    for name in names:
        for seed in seeds:
            scs = api.with_overrides(sc, run={"seed": seed}) if several else sc
            if seed not in workloads:
                try:
                    workloads[seed] = api.build_workload(scs)
                except (ScenarioError, TraceError) as exc:
                    _fail(str(exc))
            scp = api.with_overrides(scs, policy={"system": name})
            folder = (Path(out) / name / (f"seed-{seed}" if several else "")) if out else None
            label = f"{name} seed {seed}" if several else name
            if resume:
                try:
                    runs[name][seed] = stored_run(folder, scp)
                except ScenarioError as exc:
                    _fail(str(exc))
                if runs[name][seed] is not None:
                    click.echo(f"{label}: finished earlier, read from {folder}/", err=True)
                    continue
            try:
                runs[name][seed] = api.run(scp, workloads[seed], progress=progress, label=label)
            except (api.SimulationError, ScenarioError) as exc:  # e.g. online without a rate or arrival times
                _fail(f"{scenario} ({label}): {exc}")
            if folder:
                try:
                    runs[name][seed].write(folder)
                except OSError as exc:
                    _fail(f"--out {out}: cannot write ({exc.strerror or exc})")
    first = runs[names[0]][seeds[0]].summary
    click.echo(f"{sc.name}: {sc.model.name} {first['layout']}, {len(workloads[seeds[0]])} agents")
    click.echo(f"hardware: {runs[names[0]][seeds[0]].run_info['hardware_profile']}")
    if several:
        _compare_seeds(runs, seeds, Path(out) if out else None)
    else:
        _compare_one({n: r[seeds[0]].summary for n, r in runs.items()})
    if any(r.invariant_failures for by_seed in runs.values() for r in by_seed.values()):
        sys.exit(1)


def _compare_one(summaries: dict[str, dict]) -> None:
    click.echo(_table(summaries))
    if all(s["workload_mode"] == "online" for s in summaries.values()):
        _online_headline(summaries)
        return
    base = summaries.get("basic")
    for name, s in summaries.items():
        if base and name != "basic" and s["jct_s"]:
            click.echo(f"speed-up {name} vs basic (JCT): {base['jct_s'] / s['jct_s']:.3f}x")
    if "dualpath" in summaries and "oracle" in summaries and summaries["oracle"]["jct_s"]:
        click.echo(f"dualpath / oracle (JCT): {summaries['dualpath']['jct_s'] / summaries['oracle']['jct_s']:.3f}")


def _online_headline(summaries: dict[str, dict]) -> None:
    """Online arrivals fix the JCT (the last agent's arrival plus its lifetime), so the answer is the
    SLO attainment and the latencies."""
    click.echo("online arrivals: SLO attainment and latency are the answer (JCT follows the arrivals)")
    for name, s in summaries.items():
        click.echo(f"  {name:>9}: SLO attainment {_fmt(s['slo_attainment'], 3)}, TTFT p50 {_fmt(s['ttft_s']['p50'], 3)} s"
                   f" / p90 {_fmt(s['ttft_s']['p90'], 3)} s, TPOT p50 {_fmt((s['tpot_s']['p50'] or 0) * 1e3, 3)} ms")
    base = summaries.get("basic")
    for name, s in summaries.items():
        if base and name != "basic" and s["ttft_s"]["p90"] and base["ttft_s"]["p90"]:
            click.echo(f"{name} vs basic: SLO attainment {_fmt(s['slo_attainment'], 3)} vs "
                       f"{_fmt(base['slo_attainment'], 3)}, TTFT p90 x{s['ttft_s']['p90'] / base['ttft_s']['p90']:.3f}")


def _compare_seeds(runs: dict[str, dict], seeds: list[int], out: Path | None) -> None:
    """Intervals per system, and the speed-ups paired by seed (same workload in each pair)."""
    columns = {name: _intervals([r.summary for r in by_seed.values()]) for name, by_seed in runs.items()}
    click.echo(interval_table(columns, seeds))
    speedups = {}
    online = all(r.summary["workload_mode"] == "online" for by_seed in runs.values() for r in by_seed.values())
    if online:
        click.echo("online arrivals: SLO attainment and latency are the answer (JCT follows the arrivals)")
    if "basic" in runs and online:
        for name in (n for n in runs if n != "basic"):
            gain = interval(runs[name][s].summary["slo_attainment"] - runs["basic"][s].summary["slo_attainment"]
                            for s in seeds if runs[name][s].summary["slo_attainment"] is not None
                            and runs["basic"][s].summary["slo_attainment"] is not None)
            click.echo(f"SLO attainment {name} minus basic (paired by seed): {fmt_interval(gain)}")
    elif "basic" in runs:
        for name in (n for n in runs if n != "basic"):
            speedups[name] = interval(runs["basic"][s].summary["jct_s"] / runs[name][s].summary["jct_s"]
                                      for s in seeds if runs[name][s].summary["jct_s"])
            click.echo(f"speed-up {name} vs basic (JCT, paired by seed): {fmt_interval(speedups[name])}x")
    if out:
        _write_seeds(out, seeds, {"systems": columns, "speedup_vs_basic_jct": speedups})


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--set", "sets", multiple=True)
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@_strict
def validate(scenario, sets, profiles, strict):
    """Check SCENARIO (includes, overrides, units, ranges, the trace file) without running it."""
    sc = _load(scenario, sets, profiles, strict)
    try:
        check_trace_file(sc)
    except ScenarioError as exc:
        _fail(str(exc))
    click.echo(f"{scenario}: ok ({sc.model.name}, {sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D, "
               f"{sc.policy.system})")


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(), default=None,
              help="the HTML file (default FOLDER/report.html, or ./report.html for several folders); "
                   "a Markdown twin goes beside it")
def report(folders, out):
    """One self-contained HTML report (and Markdown) of run, compare, sweep or capacity FOLDERS."""
    from dpsim.viz.report_html import build
    out = Path(out) if out else (Path(folders[0]) / "report.html" if len(folders) == 1 else Path("report.html"))
    try:
        html_path, md_path = build(list(folders), out)
    except ReportError as exc:
        _fail(str(exc))
    click.echo(f"wrote {html_path} and {md_path}")


@main.command("export-metrics")
@click.argument("run_folder", type=click.Path())
def export_metrics(run_folder):
    """Write RUN_FOLDER's latencies as `vllm bench serve` (vllm_bench_serve.json) and AIPerf
    (profile_export_aiperf.json) metrics: TTFT, TPOT/ITL, E2EL in ms, throughput and goodput."""
    folder = Path(run_folder)
    try:
        result = Result.read(folder)
    except (OSError, ValueError):
        _fail(f"{folder}: not a run folder (expected summary.json, run.json, turns.parquet from dpsim run --out)")
    slo = result.run_info["scenario"]["slo"]
    ttft, tpot = float(slo["ttft"]), float(slo["tpot"])
    for name, doc in (("vllm_bench_serve.json", vllm_bench_serve(result.turns, ttft, tpot)),
                      ("profile_export_aiperf.json", aiperf_profile(result.turns, ttft, tpot))):
        (folder / name).write_text(json.dumps(doc, indent=2) + "\n")
    click.echo(f"wrote {folder}/vllm_bench_serve.json and profile_export_aiperf.json (goodput at TTFT <= {ttft:g} s, "
               f"TPOT <= {tpot * 1e3:g} ms)")


@main.command()
def schema():
    """Print the scenario JSON schema."""
    click.echo(json.dumps(scenario_json_schema(), indent=2))


# The command families that live in their own modules.
main.add_command(trace)
for _command in (*_PLANNING, *_REPRODUCE):
    main.add_command(_command)


if __name__ == "__main__":
    main()
