"""`dpsim sweep`, `dpsim capacity`, `dpsim plan`: capacity-planning commands (see docs/capacity-planning.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from dpsim import api
from dpsim.planning import plan as planning
from dpsim.planning import seeds
from dpsim.planning.capacity import find_capacity
from dpsim.planning.capacity_log import TrialLog
from dpsim.planning.seeds import METHOD, fmt, interval, seed_list
from dpsim.planning.sweep import SweepError, load_sweep, read_table, run_points
from dpsim.scenario import units
from dpsim.scenario.config import MAX_NODES, SECONDS_RANGE, ScenarioError
from dpsim.scenario.cost import scenario_usd_per_hour

MAX_LAYOUT_COUNTS = 1000  # node counts one plan may try
MAX_APS = 1e6  # agent arrivals per second: the scenario's own bound on workload.aps (dpsim.scenario.config)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _seconds(option: str, text: str | None) -> float | None:
    """'4s', '50ms' or a bare number of seconds."""
    if text is None:
        return None
    try:
        value = units.parse_time(text)
    except units.UnitError as exc:
        _fail(f"{option} = {text!r}: {exc}; expected e.g. 4s or 50ms")
    if not 0 < value <= SECONDS_RANGE[1]:
        _fail(f"{option} = {text!r}: expected a positive time up to {SECONDS_RANGE[1]:g} s, e.g. 4s")
    return value


def _positive(option: str, value: float | None) -> float | None:
    if value is not None and not 0 < value <= MAX_APS:
        _fail(f"{option} = {value!r}: expected a positive number up to {MAX_APS:g}")
    return value


# ------------------------------------------------------------------------------------------ sweep
@click.command()
@click.argument("sweep_file", metavar="SWEEP.yaml", type=click.Path())
@click.option("--jobs", "-j", type=click.IntRange(1, 1024), default=None, help="parallel workers (default: the file's jobs, else 2)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="local worker processes (default) or Ray tasks")
@click.option("--ray-address", default=None, help="Ray cluster to join (e.g. auto, ray://head:10001); "
                                                  "default: start a local Ray")
@click.option("--out", type=click.Path(), default=None, help="output folder (default: the file's out, "
                                                              "else runs/sweeps/<name>)")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option("--resume", is_flag=True, help="skip points already finished (status ok) in the table")
@click.option("--no-progress", is_flag=True)
@click.option("--seeds", "seed_count", type=int, default=1, show_default=True,
              help="run every point with N seeds (run.seed ..); OUT/results_ci.csv gives each result's mean and "
                   "95 % interval (Student t over seeds)")
def sweep(sweep_file, jobs, executor, ray_address, out, fmt, resume, no_progress, seed_count):
    """Run every point of SWEEP.yaml; rows go to OUT/results.{parquet,csv} as points finish."""
    try:
        points, meta = load_sweep(sweep_file)
        if seed_count != 1:
            points = seeds.sweep_points(points, seed_count)
    except (SweepError, ValueError) as exc:
        _fail(str(exc))
    jobs = jobs or meta["jobs"] or 2
    if jobs < 1:
        _fail(f"--jobs = {jobs}: expected a positive integer")
    executor = executor or meta["executor"] or "local"
    out_dir = Path(out or meta["out"] or Path("runs") / "sweeps" / meta["name"])
    table = out_dir / f"results.{fmt}"
    before = 0
    if resume and table.exists():
        keys = {p.key for p in points}
        previous = read_table(table)
        before = int(((previous.status == "ok") & previous.key.isin(keys)).sum())
    elif table.exists():
        click.echo(f"{table} exists: replacing it (use --resume to continue it)", err=True)
        table.unlink()
    click.echo(f"{meta['name']}: {len(points)} points, {before} already done, running {len(points) - before} "
               f"on {executor} with {jobs} job{'s' if jobs > 1 else ''}", err=True)
    t0 = time.perf_counter()
    try:
        frame = run_points(points, jobs=jobs, executor=executor, table=table, resume=resume,
                           progress=not no_progress, ray_address=ray_address)
    except SweepError as exc:
        _fail(str(exc))
    failed = frame[frame.status != "ok"]
    click.echo(f"{len(frame) - len(failed)} ok, {len(failed)} failed, in {time.perf_counter() - t0:.1f} s; "
               f"wrote {table}")
    if seed_count > 1:
        seeds.sweep_intervals(frame).to_csv(out_dir / "results_ci.csv", index=False)
        click.echo(f"wrote {out_dir / 'results_ci.csv'} (mean, low, high over {seed_count} seeds; {seeds.METHOD})")
    for row in failed.itertuples():
        click.echo(f"  failed {row.key}: {row.error}", err=True)
    if len(failed):
        sys.exit(1)


# --------------------------------------------------------------------------------------- capacity
def _capacity_options(f):
    for option in reversed([
        click.option("--set", "sets", multiple=True, help="override a field: --set policy.system=basic"),
        click.option("--slo-ttft", default=None, help="TTFT SLO (default: the scenario's slo.ttft, 4s)"),
        click.option("--slo-tpot", default=None, help="TPOT SLO (default: the scenario's slo.tpot, 50ms)"),
        click.option("--stat", type=click.Choice(["mean", "p50", "p90", "p99"]), default="mean", show_default=True,
                     help="latency statistic compared with the SLO"),
        click.option("--window", default="150s", show_default=True, help="steady-state / measurement window"),
        click.option("--horizon", default=None, help="longest simulated time per trial (default 3 windows)"),
        click.option("--tolerance", type=float, default=0.025, show_default=True, help="APS resolution"),
    ]):
        f = option(f)
    return f


@click.command()
@click.argument("scenario", type=click.Path())
@_capacity_options
@click.option("--systems", default=None, help="comma list of policy.system to search, e.g. basic,dualpath "
                                              "(default: the scenario's)")
@click.option("--aps-lo", type=float, default=None, help="lower APS bound to start the bracket (default 0.1)")
@click.option("--aps-hi", type=float, default=None, help="upper APS bound (default: doubling from --aps-lo)")
@click.option("--out", type=click.Path(), default=None,
              help="write each trial to OUT/trials.jsonl as it finishes, then capacity.json and trials.csv")
@click.option("--resume", is_flag=True, help="reuse the trials already in --out; run only the missing ones")
@click.option("--quiet", is_flag=True, help="no per-trial lines")
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--seeds", "seed_count", type=int, default=1, show_default=True,
              help="search with N seeds (run.seed ..) and give the capacity's mean and 95 % interval "
                   "(Student t over seeds)")
def capacity(scenario, sets, slo_ttft, slo_tpot, stat, window, horizon, tolerance, systems, aps_lo, aps_hi, out,
             resume, quiet, profiles, seed_count):
    """Highest APS whose online run meets the SLO, and the constraint that binds there."""
    try:
        sc = api.load_scenario(scenario, list(sets), list(profiles))
    except ScenarioError as exc:
        _fail(str(exc))
    names = [s.strip() for s in (systems or sc.policy.system).split(",") if s.strip()]
    bad = [s for s in names if s not in ("basic", "dualpath", "oracle")]
    if bad:
        _fail(f"--systems: unknown system {bad[0]!r}; expected basic, dualpath or oracle")
    _positive("--aps-lo", aps_lo), _positive("--aps-hi", aps_hi), _positive("--tolerance", tolerance)
    if aps_lo is not None and aps_hi is not None and aps_lo >= aps_hi:
        _fail(f"--aps-lo = {aps_lo:g}, --aps-hi = {aps_hi:g}: expected --aps-lo below --aps-hi")
    options = dict(slo_ttft_s=_seconds("--slo-ttft", slo_ttft), slo_tpot_s=_seconds("--slo-tpot", slo_tpot),
                   aps_lo=aps_lo, aps_hi=aps_hi, tolerance=tolerance, window_s=_seconds("--window", window),
                   horizon_s=_seconds("--horizon", horizon), stat=stat)
    if resume and not out:
        _fail("--resume needs --out (the folder of the interrupted search)")
    try:
        seeds = seed_list(sc.run.seed, seed_count)
    except ValueError as exc:
        _fail(str(exc))
    several = len(seeds) > 1
    log = None
    if out:
        try:
            log = TrialLog(out, sc, {**options, "seeds": seeds}, resume)
        except ScenarioError as exc:
            _fail(str(exc))
    results: dict[str, dict] = {name: {} for name in names}  # {system: {seed: CapacityResult}}
    for name in names:
        for seed in seeds:
            key = f"{name}/seed-{seed}" if several else name
            click.echo(f"{sc.name} ({sc.model.name} {sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D), {key}:")
            logged = {} if log is None else dict(known=log.done(key), on_trial=lambda t, k=key: log.append(k, t))
            scs = api.with_overrides(sc, policy={"system": name}, **({"run": {"seed": seed}} if several else {}))
            try:
                results[name][seed] = find_capacity(scs, progress=not quiet, **options, **logged)
            except (ScenarioError, api.SimulationError) as exc:
                _fail(f"{scenario} ({key}): {exc}")
    click.echo("")
    for warning in dict.fromkeys(w for by_seed in results.values() for r in by_seed.values() for w in r.warnings):
        click.echo(f"warning: {warning}", err=True)
    if several:
        doc = _capacity_seeds(results, seeds)
    else:
        doc = _capacity_one({name: by_seed[seeds[0]] for name, by_seed in results.items()},
                            scenario_usd_per_hour(sc) if sc.cost is not None else None)
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "capacity.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
        import pandas as pd
        pd.concat([r.trials_frame().assign(system=k, seed=s) for k, by_seed in results.items()
                   for s, r in by_seed.items()]).to_csv(out_dir / "trials.csv", index=False)
        click.echo(f"wrote {out_dir}/capacity.json, trials.csv")


def _capacity_one(results: dict, usd_per_hour: float | None = None) -> dict:
    """Print one search per system (and its price per trajectory at capacity, with a cost: section);
    return capacity.json's content."""
    for name, r in results.items():
        util = ", ".join(f"{k} {r.utilisations[k]:.2f}" for k in
                         ("storage NIC", "compute NIC", "prefill GPU", "decode HBM", "decode GPU"))
        click.echo(f"{name:>9}: capacity {r.aps:.4g} APS (SLO TTFT {r.slo['stat']} <= {r.slo['ttft_s']:g} s, "
                   f"TPOT <= {r.slo['tpot_s'] * 1e3:g} ms; +-{r.slo['tolerance_aps']:g}); binding: {r.binding}")
        click.echo(f"{'':>11}at capacity: {util}" + (f"; {r.note}" if r.note else ""))
        if usd_per_hour is not None and r.aps:
            click.echo(f"{'':>11}cost at capacity: cluster {usd_per_hour:.4g} USD/h = "
                       f"{usd_per_hour / (r.aps * 3600):.3g} USD per agent trajectory")
    if "basic" in results and "dualpath" in results and results["basic"].aps:
        click.echo(f"dualpath / basic capacity: {results['dualpath'].aps / results['basic'].aps:.2f}x")
    return {k: v.to_dict() for k, v in results.items()}


def _capacity_seeds(results: dict[str, dict], seeds: list[int]) -> dict:
    """Print each system's capacity as a mean and 95 % interval over the seeds; return capacity.json's content."""
    from collections import Counter


    doc = {}
    for name, by_seed in results.items():
        iv = interval(r.aps for r in by_seed.values())
        binding = Counter(r.binding for r in by_seed.values())
        any_r = next(iter(by_seed.values()))
        click.echo(f"{name:>9}: capacity {fmt(iv)} APS (mean ±95 % over seeds {', '.join(map(str, seeds))}: "
                   f"{', '.join(f'{r.aps:.4g}' for r in by_seed.values())}; search resolution "
                   f"+-{any_r.slo['tolerance_aps']:g}); binding: "
                   + ", ".join(f"{b} ({n} of {len(seeds)})" for b, n in binding.most_common()))
        doc[name] = {"method": METHOD, "seeds": seeds, "capacity_aps": iv,
                     "by_seed": {str(s): r.to_dict() for s, r in by_seed.items()}}
    if "basic" in results and "dualpath" in results:
        ratio = interval(results["dualpath"][s].aps / results["basic"][s].aps for s in seeds
                         if results["basic"][s].aps)
        click.echo(f"dualpath / basic capacity (paired by seed): {fmt(ratio)}x")
        doc["dualpath_over_basic"] = ratio
    return doc


# ------------------------------------------------------------------------------------------- plan
def _nodes(text: str) -> list[int]:
    """'6', '4,6,8' or '3..6'."""
    try:
        if ".." in text:
            a, b = text.split("..", 1)
            if int(b) - int(a) > MAX_LAYOUT_COUNTS:
                _fail(f"--nodes = {text!r}: more than {MAX_LAYOUT_COUNTS} node counts to try")
            counts = list(range(int(a), int(b) + 1))
        else:
            counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"--nodes = {text!r}: expected a count, a list (4,6,8) or a range (3..6)")
    if not counts or not all(2 <= n <= 2 * MAX_NODES for n in counts):
        _fail(f"--nodes = {text!r}: expected total node counts from 2 (1P1D) to {2 * MAX_NODES:,}")
    return counts


@click.command()
@click.argument("scenario", type=click.Path())
@_capacity_options
@click.option("--nodes", required=True, help="total node counts to try: 6, 4,6,8 or 3..6")
@click.option("--target-aps", type=float, default=None, help="agents per second the cluster must sustain")
@click.option("--aps-lo", type=float, default=None, help="lower APS bound of each layout's search (default 0.1)")
@click.option("--aps-hi", type=float, default=None, help="upper APS bound of each layout's search")
@click.option("--jobs", "-j", type=click.IntRange(1, 1024), default=2, show_default=True, help="layouts searched in parallel")
@click.option("--out", type=click.Path(), default=None, help="write plan.json and layouts.csv here")
def plan(scenario, sets, slo_ttft, slo_tpot, stat, window, horizon, tolerance, nodes, target_aps, aps_lo, aps_hi,
         jobs, out):
    """Recommend a P/D layout and node count: SLO capacity of each layout beside the analytic range."""
    counts = _nodes(nodes)
    if not counts or min(counts) < 2:
        _fail(f"--nodes = {nodes!r}: expected node counts of at least 2 (one prefill, one decode)")
    _positive("--target-aps", target_aps), _positive("--tolerance", tolerance)
    _positive("--aps-lo", aps_lo), _positive("--aps-hi", aps_hi)
    if aps_lo is not None and aps_hi is not None and aps_lo >= aps_hi:
        _fail(f"--aps-lo = {aps_lo:g}, --aps-hi = {aps_hi:g}: expected --aps-lo below --aps-hi")
    if jobs < 1:
        _fail(f"--jobs = {jobs}: expected a positive integer")
    options = dict(slo_ttft_s=_seconds("--slo-ttft", slo_ttft), slo_tpot_s=_seconds("--slo-tpot", slo_tpot),
                   tolerance=tolerance, window_s=_seconds("--window", window), aps_lo=aps_lo, aps_hi=aps_hi,
                   horizon_s=_seconds("--horizon", horizon), stat=stat)
    try:
        p = planning.plan(scenario, counts, target_aps=target_aps, sets=list(sets), jobs=jobs, progress=True,
                          **options)
    except ScenarioError as exc:
        _fail(str(exc))
    lo, hi = p.pd_range
    click.echo(f"analytic bottleneck-free P/D range (docs/architecture.md#paper-data-paths): {lo:.3g} .. {hi:.3g}")
    cols = ["prefill_nodes", "decode_nodes", "pd_ratio", "in_analytic_range", "capacity_aps", "aps_per_node",
            "binding"]
    if "usd_per_hour_at_target" in p.table:
        cols += ["copies_for_target", "usd_per_hour_at_target", "usd_per_trajectory_at_target"]
        shown = p.table.sort_values("usd_per_hour_at_target", na_position="last")  # ranked by cost at the target
        click.echo(f"layouts ranked by the price of serving {target_aps:g} APS with copies of the layout "
                   f"(cost: section; USD):")
    else:
        cols += ["usd_per_hour"] if "usd_per_hour" in p.table else []
        shown = p.table
    click.echo(shown[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if p.recommended:
        r = p.recommended
        click.echo(f"recommended: {r['prefill_nodes']}P{r['decode_nodes']}D (P/D {r['pd_ratio']:.3g}, "
                   f"{'inside' if r['in_analytic_range'] else 'outside'} the analytic range): "
                   f"{r['capacity_aps']:.4g} APS, binding {r['binding']}")
    if p.cheapest:
        c = p.cheapest
        click.echo(f"cheapest at {target_aps:g} APS: {c['copies_for_target']} x {c['prefill_nodes']}P{c['decode_nodes']}D, "
                   f"{c['usd_per_hour_at_target']:.4g} USD/h, {c['usd_per_trajectory_at_target']:.3g} USD per agent "
                   f"trajectory")
    for note in p.notes:
        click.echo(note, err=True)
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "plan.json").write_text(json.dumps(p.to_dict(), indent=2, default=str) + "\n")
        p.table.to_csv(out_dir / "layouts.csv", index=False)
        click.echo(f"wrote {out_dir}/plan.json, layouts.csv")
    if p.recommended is None:
        sys.exit(1)


COMMANDS = [sweep, capacity, plan]
