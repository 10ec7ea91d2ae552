"""`dpsim` command line: run, compare, validate, schema, trace, sweep, capacity, plan."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from dpsim.config import ScenarioError, scenario_json_schema


def _fail(message: str, status: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def _load(path: str, sets: tuple[str, ...], profiles: tuple[str, ...] = (), strict: bool = False):
    """The validated scenario; its plausibility warnings go to stderr (errors with `strict`)."""
    from dpsim.api import load_scenario
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
    from dpsim import api
    from dpsim.workload.format import TraceError
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


@main.command()
@click.argument("scenario", type=click.Path())
@click.option("--set", "sets", multiple=True, help="override a field: --set workload.agents=1024")
@click.option("--profile", "profiles", multiple=True, type=click.Path(),
              help="merge a calibration/testbed profile over the scenario (before --set)")
@click.option("--out", type=click.Path(), default=None, help="output folder (default runs/<name>)")
@click.option("--no-plots", is_flag=True, help="skip the PNG figures")
@_strict
def run(scenario, sets, profiles, out, no_plots, strict):
    """Simulate SCENARIO; print a summary, write summary.json, run.json, turns/links parquet, plots."""
    sc = _load(scenario, sets, profiles, strict)
    result = _run(sc)
    out_dir = Path(out or Path("runs") / sc.name)
    try:
        result.write(out_dir)
        if not no_plots:
            from dpsim.plots import write_run_plots
            write_run_plots(result, out_dir, sc.slo.ttft)
    except OSError as exc:
        _fail(f"--out {out_dir}: cannot write ({exc.strerror or exc})")
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
@click.option("--out", type=click.Path(), default=None, help="write each run under OUT/<policy>/")
@_strict
def compare(scenario, policies, sets, profiles, out, strict):
    """Run SCENARIO under each policy.system and print them side by side with speed-ups."""
    from dpsim import api
    sc = _load(scenario, sets, profiles, strict)
    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        _fail(f"--policies {policies!r}: no system given; expected a comma-separated list of basic, dualpath, oracle")
    bad = [p for p in names if p not in ("basic", "dualpath", "oracle")]
    if bad:
        _fail(f"--policies: unknown system {bad[0]!r}; expected basic, dualpath or oracle")
    from dpsim.workload.format import TraceError
    try:
        trajectories = api.build_workload(sc)
    except ScenarioError as exc:
        _fail(str(exc))
    except TraceError as exc:
        _fail(str(exc))
    results = {}
    for name in names:
        scp = api.with_overrides(sc, policy={"system": name})
        try:
            results[name] = api.run(scp, trajectories)
        except api.SimulationError as exc:
            _fail(f"{scenario} ({name}): {exc}")
        if out:
            try:
                results[name].write(Path(out) / name)
            except OSError as exc:
                _fail(f"--out {out}: cannot write ({exc.strerror or exc})")
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
@_strict
def validate(scenario, sets, profiles, strict):
    """Check SCENARIO (includes, overrides, units, ranges, the trace file) without running it."""
    from dpsim.api import check_trace_file
    sc = _load(scenario, sets, profiles, strict)
    try:
        check_trace_file(sc)
    except ScenarioError as exc:
        _fail(str(exc))
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
