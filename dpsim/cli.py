"""`dpsim` command line: run, compare, validate, schema, trace, sweep, capacity, plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dpsim.config import ScenarioError, scenario_json_schema


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _load(path: str, sets: tuple[str, ...], profiles: tuple[str, ...] = ()):
    from dpsim.api import load_scenario
    try:
        return load_scenario(path, list(sets), list(profiles))
    except ScenarioError as exc:
        _fail(str(exc))


def _run(scenario, progress=None):
    from dpsim import api
    try:
        return api.run(scenario, progress=progress)
    except (api.SimulationError, ScenarioError) as exc:
        _fail(f"{scenario.source_path}: {exc}")
    except Exception as exc:  # trace readers raise their own located errors
        if type(exc).__name__ == "TraceError":
            _fail(str(exc))
        raise


def _fmt(value, digits=4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


SUMMARY_ROWS = [
    ("JCT (s)", lambda s: s["jct_s"]),
    ("turns", lambda s: s["turns"]),
    ("prompt tokens/s", lambda s: s["prompt_tokens_per_s"]),
    ("generated tokens/s", lambda s: s["gen_tokens_per_s"]),
    ("TTFT p50 / p90 (s)", lambda s: f"{_fmt(s['ttft_s']['p50'])} / {_fmt(s['ttft_s']['p90'])}"),
    ("TTST p50 (s)", lambda s: s["ttst_s"]["p50"]),
    ("TPOT p50 (s)", lambda s: s["tpot_s"]["p50"]),
    ("SLO attainment", lambda s: s["slo_attainment"]),
    ("storage NIC max/avg", lambda s: s["snic_balance_max_over_avg"]),
    ("reads on the DE side", lambda s: s["read_side_fraction_de"]),
    ("GPU busy prefill / decode", lambda s: f"{_fmt(s['gpu_busy_fraction']['prefill'], 3)} / "
                                            f"{_fmt(s['gpu_busy_fraction']['decode'], 3)}"),
    ("invariants", lambda s: "ok" if s["invariants_ok"] else "FAILED"),
]


def _table(columns: dict[str, dict]) -> str:
    names = list(columns)
    width = max(len(r[0]) for r in SUMMARY_ROWS) + 2
    lines = ["".ljust(width) + "".join(n.rjust(16) for n in names)]
    for label, get in SUMMARY_ROWS:
        lines.append(label.ljust(width) + "".join(_fmt(get(columns[n])).rjust(16) for n in names))
    return "\n".join(lines)


PROGRESS = click.option("--progress/--no-progress", default=None,
                        help="a bar on stderr: turns done, simulated time, ETA (default: run.progress, "
                             "else when stderr is a terminal)")


@click.group()
@click.version_option(package_name="dpsim")
def main() -> None:
    """dpsim: simulate PD-disaggregated LLM serving with DualPath KV loading."""


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--set", "sets", multiple=True, help="override a field: --set workload.agents=1024")
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--out", type=click.Path(), default=None, help="output folder (default runs/<name>)")
@click.option("--no-plots", is_flag=True, help="skip the PNG figures")
@PROGRESS
def run(scenario, sets, profiles, out, no_plots, progress):
    """Simulate SCENARIO; print a summary, write summary.json, run.json, turns/links parquet, plots."""
    sc = _load(scenario, sets, profiles)
    result = _run(sc, progress)
    out_dir = Path(out or Path("runs") / sc.name)
    result.write(out_dir)
    if not no_plots:
        from dpsim.plots import write_run_plots
        write_run_plots(result, out_dir, sc.slo.ttft)
    click.echo(f"{sc.name}: {sc.model.name} {result.summary['layout']}, {result.summary['agents']} agents, "
               f"{sc.policy.system}")
    click.echo(_table({sc.policy.system: result.summary}))
    click.echo(f"wrote {out_dir}/ (summary.json, run.json, turns.parquet, links.parquet"
               f"{', plots' if not no_plots else ''}) in {result.run_info['wall_s']:.1f} s wall")
    if result.invariant_failures:
        click.echo("invariant failures:\n  " + "\n  ".join(result.invariant_failures), err=True)
        sys.exit(1)


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--policies", default="basic,dualpath,oracle", show_default=True)
@click.option("--set", "sets", multiple=True)
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--out", type=click.Path(), default=None,
              help="write each run under OUT/<policy>/ as soon as it finishes")
@click.option("--resume", is_flag=True, help="reuse the finished runs in --out; simulate only the missing ones")
@PROGRESS
def compare(scenario, policies, sets, profiles, out, resume, progress):
    """Run SCENARIO under each policy.system and print them side by side with speed-ups."""
    from dpsim import api
    from dpsim.runs import stored_run
    sc = _load(scenario, sets, profiles)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    bad = [p for p in names if p not in ("basic", "dualpath", "oracle")]
    if bad:
        _fail(f"--policies: unknown system {bad[0]!r}; expected basic, dualpath or oracle")
    if resume and not out:
        _fail("--resume needs --out (the folder of the interrupted compare)")
    trajectories = api.build_workload(sc)
    results = {}
    for name in names:
        scp = api.with_overrides(sc, policy={"system": name})
        folder = Path(out) / name if out else None
        if resume:
            try:
                results[name] = stored_run(folder, scp)
            except ScenarioError as exc:
                _fail(str(exc))
            if results[name] is not None:
                click.echo(f"{name}: finished earlier, read from {folder}/", err=True)
                continue
        try:
            results[name] = api.run(scp, trajectories, progress=progress, label=name)
        except api.SimulationError as exc:
            _fail(f"{scenario} ({name}): {exc}")
        if folder:
            results[name].write(folder)
    summaries = {n: r.summary for n, r in results.items()}
    click.echo(f"{sc.name}: {sc.model.name} {next(iter(summaries.values()))['layout']}, "
               f"{len(trajectories)} agents")
    click.echo(_table(summaries))
    base = summaries.get("basic")
    for name, s in summaries.items():
        if base and name != "basic" and s["jct_s"]:
            click.echo(f"speed-up {name} vs basic (JCT): {base['jct_s'] / s['jct_s']:.3f}x")
    if "dualpath" in summaries and "oracle" in summaries and summaries["oracle"]["jct_s"]:
        click.echo(f"dualpath / oracle (JCT): {summaries['dualpath']['jct_s'] / summaries['oracle']['jct_s']:.3f}")
    if any(r.invariant_failures for r in results.values()):
        sys.exit(1)


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--set", "sets", multiple=True)
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
def validate(scenario, sets, profiles):
    """Check SCENARIO (includes, overrides, units, ranges) without running it."""
    sc = _load(scenario, sets, profiles)
    click.echo(f"{scenario}: ok ({sc.model.name}, {sc.cluster.prefill_nodes}P{sc.cluster.decode_nodes}D, "
               f"{sc.policy.system})")


@main.command()
def schema():
    """Print the scenario JSON schema."""
    click.echo(json.dumps(scenario_json_schema(), indent=2))


try:
    from dpsim.trace_cli import trace
    main.add_command(trace)
except ImportError:  # pragma: no cover - the trace module ships with dpsim
    pass


from dpsim.plan_cli import COMMANDS as _PLANNING  # sweep, capacity, plan  # noqa: E402

for _command in _PLANNING:
    main.add_command(_command)

from dpsim.reproduce.cli import COMMANDS as _REPRODUCE  # reproduce, validation-report, compare-points  # noqa: E402

for _command in _REPRODUCE:
    main.add_command(_command)


if __name__ == "__main__":
    main()
