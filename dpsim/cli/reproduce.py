"""`dpsim reproduce` (run the paper's experiments) and `dpsim validation-report` (the table)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dpsim.planning.run_estimate import WallEstimate, duration_text, figures_path
from dpsim.reproduce.compare import compare_points, comparison_text, speedup_changes, speedup_text
from dpsim.reproduce.experiments import ExperimentError, build_points, load_experiments, load_point_scenario, quick_mask
from dpsim.reproduce.report import load_published, validation_markdown
from dpsim.reproduce.run import done_points, drop_done, mark_repeats, read_points, run_reproduce
from dpsim.reproduce.tasks import estimate_turns
from dpsim.scenario.config import ScenarioError

EXPERIMENTS = "scenarios/paper/experiments"
PUBLISHED = "scenarios/paper/published.yaml"


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _names(only: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    return names or None


def _wall_text(seconds: float) -> str:
    return duration_text(seconds)


def _turns_text(turns: int) -> str:
    return f"~{turns / 1e6:.2f} M turns" if turns >= 100_000 else f"~{turns / 1e3:.1f} k turns"


@click.command()
@click.option("--only", multiple=True, help="experiment name(s), comma separated or repeated")
@click.option("--quick", is_flag=True, help="the shrunk set (minutes on 2 cores); each file says what it shrinks")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel processes")
@click.option("--out", type=click.Path(), default=None, help="output folder (default runs/reproduce[-quick])")
@click.option("--profile", type=click.Path(), default=None,
              help="calibration profile applied to every point (e.g. scenarios/paper/testbed.yaml)")
@click.option("--seed", type=int, default=None, help="run.seed of every point (default: each scenario's own)")
@click.option("--experiments", "folder", type=click.Path(), default=EXPERIMENTS, show_default=True)
@click.option("--published", type=click.Path(), default=PUBLISHED, show_default=True)
@click.option("--no-figures", is_flag=True, help="skip the PNGs")
@click.option("--list", "list_only", is_flag=True,
              help="print the experiments, their point counts and estimated simulated turns; run nothing")
@click.option("--where", "where", multiple=True,
              help="KEY=VALUE: drop points that set KEY to another value (e.g. workload.agents=1024)")
@click.option("--cache", type=click.Path(), default=None,
              help="folder of finished simulations to reuse (identical resolved scenarios run once)")
@click.option("--cached-only", is_flag=True,
              help="only the points already in --cache: assemble what a long set has finished, simulate nothing")
@click.option("--skip-done", "skip_done", multiple=True, type=click.Path(),
              help="POINTS_CSV: skip the points that already have an 'ok' row of the same size there (resume a long "
                   "set on a fresh checkout from the committed docs/data/points.csv); repeatable")
@click.option("--heartbeat", "heartbeat_s", type=click.FloatRange(min=0), default=600.0, show_default=True,
              help="wall seconds between progress lines (turns done, rate, time left) of each long "
                   "run, steady or pd_bound simulation, on stderr (a capacity search prints each trial "
                   "instead); 0: none")
def reproduce(only, quick, jobs, out, profile, seed, folder, published, no_figures, list_only, where, cache,
              cached_only, skip_done, heartbeat_s):
    """Run the paper's experiments: OUT/points.csv, OUT/figures/*.png, OUT/validation.md."""
    if profile and not Path(profile).is_file():
        _fail(f"--profile {profile!r}: file not found")
    if cached_only and not cache:
        _fail("--cached-only needs --cache FOLDER (the results to assemble)")
    filters = {}
    for item in where:
        if "=" not in item:
            _fail(f"--where {item!r}: expected KEY=VALUE, e.g. --where workload.agents=1024")
        key, value = item.split("=", 1)
        filters[key.strip()] = value.strip()
    try:
        experiments = load_experiments(folder, _names(only))
        done = done_points(skip_done, quick)
        if list_only:
            wall = WallEstimate()
            total, total_s = 0, 0.0
            simulated: set[str] = set()  # a simulation an earlier point runs is not run again (run_once)
            for exp in experiments:
                points = drop_done(build_points([exp], quick=quick, profile=profile, check=False, where=filters), done)
                repeated = mark_repeats(points, simulated)
                repeats = sum(repeated)
                turns = [0 if again else estimate_turns(p) for p, again in zip(points, repeated)]
                total += sum(turns)
                size = (_turns_text(sum(turns)) if sum(turns) else "run earlier" if repeats
                        else "closed form" if points else "nothing to run")
                if wall and sum(turns):
                    seconds = [wall.seconds(sc.model.name, sc.policy.system, n, bool(sc.workload.trace)) or 0.0
                               for p, n in zip(points, turns)
                               if n for sc in [load_point_scenario(p)]]
                    total_s += sum(seconds)
                    size += f" {_wall_text(sum(seconds))}"
                again = f" ({repeats} run earlier)" if repeats else ""
                click.echo(f"{exp.name:18s} {len(points):4d} points {size}  {exp.title}{again}")
            if wall:
                click.echo(f"wall {_wall_text(total_s)} of one core, from {figures_path()} (python -m dpsim.bench --paper) "
                           f"and a bare SimPy loop of {wall.bare_events_per_s:,.0f} events/s now; clusters larger "
                           f"than the bench's cost more per turn")
            click.echo(f"{'total':18s} {'':4s}        {_turns_text(total)} simulated (a capacity search counted at its "
                       f"fewest trials; one that leaves its first bracket runs more)")
            return
        items, causes = load_published(published)  # fail on a bad published file before hours of runs
        out_dir = Path(out or ("runs/reproduce-quick" if quick else "runs/reproduce"))
        table = run_reproduce(experiments, out_dir, quick=quick, jobs=jobs, profile=profile, seed=seed,
                              figures=not no_figures, progress=sys.stderr.isatty(), where=filters,
                              cache=cache, cached_only=cached_only, heartbeat_s=heartbeat_s, done=done)
    except (ExperimentError, ScenarioError) as exc:
        _fail(str(exc))
    (out_dir / "validation.md").write_text(
        validation_markdown(table, items, causes, str(out_dir / "points.csv"), experiments if quick else None))
    failed = table[table.status != "ok"]
    click.echo(f"{len(table)} points ({len(failed)} failed) -> {out_dir}/points.csv, figures/, validation.md")
    for row in failed.itertuples():
        click.echo(f"  failed: {row.experiment} {row.policy}: {row.error}", err=True)
    if len(failed):
        sys.exit(1)


@click.command("validation-report")
@click.argument("points_csvs", nargs=-1, required=True, type=click.Path())
@click.option("--published", type=click.Path(), default=PUBLISHED, show_default=True)
@click.option("--experiments", "folder", type=click.Path(), default=EXPERIMENTS, show_default=True,
              help="to print what quick mode changed")
@click.option("--merged", type=click.Path(), default=None,
              help="also write the merged table here (a point found in several files: the last file wins)")
@click.option("--drop-stale", is_flag=True,
              help="drop rows that are no longer points of the experiment files (their experiment file "
                   "changed since they ran, e.g. a new task or option: the key differs); listed on stderr. "
                   "Rows run with --seed count as stale")
@click.option("--figures", "figures_dir", type=click.Path(), default=None,
              help="also draw every experiment's figure from the merged table into this folder "
                   "(balance series from the series/ folder beside each points.csv)")
def validation_report(points_csvs, published, folder, merged, drop_stale, figures_dir):
    """Print docs/validation.md (markdown) from POINTS_CSV...: published vs dpsim, error, cause of gaps.
    Several files (e.g. runs of different experiments or scales) are read as one table."""
    try:
        items, causes = load_published(published)
        points = merge_points([read_points(points_csv) for points_csv in points_csvs])
        points_csv = ", ".join(points_csvs)
        experiments = load_experiments(folder) if Path(folder).is_dir() else None
        if drop_stale:
            if experiments is None:
                _fail(f"--drop-stale: experiments folder {folder} not found")
            stale = stale_rows(points, experiments)
            for row in points[stale].itertuples():
                click.echo(f"dropped stale row: {row.experiment} {row.policy} key {row.key}", err=True)
            points = points[~stale].reset_index(drop=True)
    except ExperimentError as exc:
        _fail(str(exc))
    if merged:
        Path(merged).parent.mkdir(parents=True, exist_ok=True)
        points.to_csv(merged, index=False)
    if figures_dir:
        if experiments is None:
            _fail(f"--figures: experiments folder {folder} not found")
        from dpsim.reproduce.figures import draw_all
        draw_all(points, experiments, Path(figures_dir), [Path(p).parent / "series" for p in points_csvs])
    click.echo(validation_markdown(points, items, causes, points_csv, experiments), nl=False)


def merge_points(tables):
    """One table from several points.csv: a point (experiment, key) present in more than one keeps its
    last row, and an experiment run at full size drops its quick rows; rows are grouped by experiment in
    first-seen order, points in their files' order."""
    import pandas as pd


    points = pd.concat(tables, ignore_index=True)
    order = {name: i for i, name in enumerate(dict.fromkeys(points.experiment))}
    if "key" in points:
        points = points.drop_duplicates(subset=["experiment", "key"], keep="last")
    quick = quick_mask(points)
    full_size = set(points.loc[~quick, "experiment"])
    points = points[~(quick & points.experiment.isin(full_size))]
    return points.sort_values("experiment", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def stale_rows(points, experiments):
    """Boolean mask of the rows whose (experiment, key) is not a point of `experiments` as they are now,
    each built with the row's own profile and size (quick or full)."""
    import pandas as pd


    def column(name, default):
        return points[name] if name in points else pd.Series(default, index=points.index)

    quick = quick_mask(points)
    profile = column("profile", "").map(lambda v: "" if pd.isna(v) else str(v))
    current = set()
    for is_quick, prof in set(zip(quick, profile)):
        for point in build_points(experiments, quick=is_quick, profile=prof or None, check=False):
            current.add((dict(point.labels)["experiment"], point.key))
    keys = column("key", "").astype(str)
    return pd.Series([(e, k) not in current for e, k in zip(points.experiment, keys)], index=points.index)


@click.command("compare-points")
@click.argument("old_csv", type=click.Path())
@click.argument("new_csv", type=click.Path())
@click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="relative tolerance for numbers (0: equal as written in the CSV)")
@click.option("--speedups", type=click.FloatRange(min=0), default=None,
              help="instead: list the points whose Basic/DualPath speed-up moved by more than this "
                   "fraction (e.g. 0.05), matching points on their labels, so OLD and NEW may come "
                   "from different profiles")
def compare_points_command(old_csv, new_csv, rtol, speedups):
    """Compare the rows of NEW_CSV (points re-run now) with the same points' rows in OLD_CSV (e.g. the
    committed docs/data/points.csv), cell by cell; exit 1 if any differ or failed."""
    try:
        required = ("experiment", "key", "policy", "status")
        old, new = read_points(old_csv, required=required), read_points(new_csv, required=required)
    except ExperimentError as exc:
        _fail(str(exc))
    if speedups is not None:
        click.echo(speedup_text(speedup_changes(old, new), speedups, old_csv, new_csv), nl=False)
        return
    result = compare_points(old, new, rtol)
    click.echo(comparison_text(result, old_csv, new_csv, rtol), nl=False)
    if result.differing or result.not_ok_in_new:
        sys.exit(1)


COMMANDS = [reproduce, validation_report, compare_points_command]
