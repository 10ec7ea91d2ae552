"""Run, summarise and draw the what-if studies of docs/whatif.md sections 2, 4 and 6.

    python -m dpsim.reproduce.whatif_studies scenarios/whatif/split-reads.yaml --jobs 2 --out runs/whatif/split-reads

A study is a sweep file (the `dpsim sweep` format) whose `labels.study` says what each run measures:

- `split-reads`: the storage NICs' utilisation in the middle of the reading period (the measure of
  the pd-bound experiment, docs/validation.md) and JCT, per layout and `policy.read_split`;
- `adaptive-pd`: JCT per fixed layout or role-switching variant (`labels.variant`);
- `tail-aware`: TTFT percentiles of the turns that arrive in the window [`labels.warmup_s`, end of
  run] (turns still waiting at the end count with their wait so far), per `policy.dispatch_order`.

Every point runs (resumable, like `dpsim sweep`), then `table.csv`, `figure.png` (titled with model,
layout and hardware profile) and `summary.csv` (median and worst over seeds of each variant) are
written to --out, and the summary is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd

from dpsim import api
from dpsim.metrics.guidance import hardware_profile
from dpsim.planning.sweep import Point, SweepError, flatten, load_sweep, run_points, scenario_for
from dpsim.reproduce.tasks import storage_utilisation

STUDIES = ("split-reads", "adaptive-pd", "tail-aware")


def _labels(point: Point) -> dict:
    return dict(point.labels)


def measure(point: Point) -> dict:
    """One run of a study point (module level: sweep workers pickle it)."""
    labels = _labels(point)
    scenario = scenario_for(point)
    result = api.run(scenario, progress=False)
    row = flatten(result.summary)
    row["invariants_failed"] = len(result.invariant_failures)
    cl = scenario.cluster
    row["layout"] = f"{cl.prefill_nodes}P{cl.decode_nodes}D"
    if labels["study"] == "split-reads":
        row.update(storage_utilisation(result.links))
    elif labels["study"] == "adaptive-pd":
        pd_cfg = scenario.policy.adaptive_pd
        row["variant"] = (f"{row['layout']} fixed" if pd_cfg.mode.value == "fixed" else
                          f"{row['layout']} adaptive, switch {pd_cfg.switch_cost:g} s")
    elif labels["study"] == "tail-aware":
        row.update(window_ttft(result.turns, float(labels.get("warmup_s", 0.0)), float(result.summary["jct_s"])
                               if scenario.run.max_sim_time is None else scenario.run.max_sim_time))
    return row


def window_ttft(turns: pd.DataFrame, warmup_s: float, end_s: float) -> dict:
    """TTFT p50/p90/p99/max of turns arriving in [warmup_s, end_s]; one still waiting at end_s counts
    with end_s - arrival (a lower bound), so a backlog cannot hide in the tail."""
    arrived = turns[(turns.t_arrive >= warmup_s) & (turns.t_arrive <= end_s)]
    ttft = np.where(arrived.t_first_token.notna(), arrived.ttft_s, end_s - arrived.t_arrive).astype(float)
    if ttft.size == 0:
        return {"window_ttft_s_p50": None, "window_ttft_s_p90": None, "window_ttft_s_p99": None, "window_turns": 0}
    p50, p90, p99 = np.percentile(ttft, [50, 90, 99])
    return {"window_ttft_s_p50": round(float(p50), 6), "window_ttft_s_p90": round(float(p90), 6),
            "window_ttft_s_p99": round(float(p99), 6), "window_ttft_s_max": round(float(ttft.max()), 6),
            "window_turns": int(ttft.size), "window_waiting": int(arrived.t_first_token.isna().sum())}


# What each study compares: (grouping columns, metric columns with the direction that is worse).
SPECS = {
    "split-reads": (["layout", "policy.read_split"], {"snic_utilisation": "min", "jct_s": "max"}),
    "adaptive-pd": (["variant"], {"jct_s": "max", "prefill_nodes_mean": "max", "role_switches": "max"}),
    "tail-aware": (["layout", "policy.dispatch_order"], {"window_ttft_s_p99": "max", "window_ttft_s_p90": "max",
                                                         "window_ttft_s_p50": "max", "window_ttft_s_max": "max"}),
}


def summarise(table: pd.DataFrame, study: str) -> pd.DataFrame:
    """Median and worst over seeds of each variant's metrics (worst: lowest utilisation, highest time)."""
    keys, metrics = SPECS[study]
    ok = table[table.status == "ok"]
    rows = []
    for values, group in ok.groupby(keys, sort=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        row["seeds"] = len(group)
        for metric, worse in metrics.items():
            if metric not in group:
                continue
            series = pd.to_numeric(group[metric], errors="coerce")
            row[f"{metric}_median"] = round(float(series.median()), 6)
            row[f"{metric}_worst"] = round(float(series.min() if worse == "min" else series.max()), 6)
        rows.append(row)
    return pd.DataFrame(rows)


def _title(points: list[Point], what: str) -> str:
    """`what`, then model, layouts, hardware profile and workload profile of the study's points."""
    scenarios = [scenario_for(p) for p in points]
    first = scenarios[0]
    hardware = hardware_profile(first)
    hardware = ("H800 preset" if hardware.startswith("no calibration") else
                "paper testbed profile" if "testbed profile" in hardware else hardware.split(" (")[0][:40])
    if first.hardware.gpu.peak_flops_fp8 >= 1e16:  # 50x an H800: the pd-bound thought experiment
        hardware += " with GPUs made nearly free"
    layouts = list(dict.fromkeys(f"{s.cluster.prefill_nodes}P{s.cluster.decode_nodes}D" for s in scenarios))
    w = first.workload
    per_node = {s.workload.agents / (s.cluster.prefill_nodes + s.cluster.decode_nodes) for s in scenarios}
    agents = f"{per_node.pop():g} agents per node" if len(per_node) == 1 and len(layouts) > 1 else f"{w.agents} agents"
    load = f"online {w.aps:g} APS" if w.mode == "online" else f"offline {agents}"
    phases = ""
    if w.phase_profile is not None:
        p = w.phase_profile
        phases = (f"\nphases (first/second half of each trajectory): appends x{p.first_append_scale:g}/"
                  f"x{p.second_append_scale:g}, generations x{p.first_gen_scale:g}/x{p.second_gen_scale:g}")
    return (f"{what}\n{first.model.name}, {', '.join(layouts)}, {hardware}; "
            f"{int(w.mal) // 1024}K set, {load}{phases}")


def draw(summary: pd.DataFrame, study: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys, metrics = SPECS[study]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    if study == "split-reads":
        layouts = list(dict.fromkeys(summary.layout))
        x = np.arange(len(layouts))
        for offset, (mode, group) in zip((-0.12, 0.12), summary.groupby("policy.read_split", sort=False)):
            group = group.set_index("layout").reindex(layouts)
            ax.errorbar(x + offset, group.snic_utilisation_median,
                        yerr=[group.snic_utilisation_median - group.snic_utilisation_worst, 0 * x],
                        fmt="o", capsize=3, label=f"read_split: {mode} (median, bar to worst seed)")
        ax.set_xticks(x, layouts)
        ax.set_ylabel("storage NIC utilisation (middle 80 %)")
        ax.set_xlabel("layout")
        ax.set_ylim(top=1.02)
    else:
        metric = "jct_s" if study == "adaptive-pd" else "window_ttft_s_p99"
        labels = [" ".join(str(v) for v in r) for r in summary[keys].itertuples(index=False)]
        y = np.arange(len(labels))
        ax.barh(y, summary[f"{metric}_median"], color="tab:blue", label="median over seeds")
        ax.plot(summary[f"{metric}_worst"], y, "k|", markersize=14, label="worst seed")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel({"jct_s": "JCT (s)", "window_ttft_s_p99": "TTFT p99 (s)"}[metric])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TITLES = {"split-reads": "Split reads vs whole-request path choice, storage-bound",
          "adaptive-pd": "Adaptive P/D roles vs fixed layouts, phased rollout",
          "tail-aware": "Tail-aware (deadline) vs FIFO scheduling, online"}


@click.command()
@click.argument("sweep_file", type=click.Path())
@click.option("--jobs", default=1, show_default=True, help="worker processes")
@click.option("--out", "out", type=click.Path(), required=True, help="folder for table.csv, summary.csv, figure.png")
@click.option("--figure", type=click.Path(), default=None, help="also write the figure here (e.g. docs/figures/...)")
def main(sweep_file: str, jobs: int, out: str, figure: str | None) -> None:
    """Run a what-if study's sweep file and write its table, summary and figure."""
    try:
        points, _ = load_sweep(sweep_file)
    except SweepError as exc:
        raise click.ClickException(str(exc)) from None
    studies = {_labels(p).get("study") for p in points}
    if len(studies) != 1 or not studies <= set(STUDIES):
        raise click.ClickException(f"{sweep_file}: labels.study = {sorted(map(str, studies))}: expected one of "
                                   f"{', '.join(STUDIES)}")
    study = studies.pop()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    table = run_points(points, task=measure, jobs=jobs, table=folder / "table.csv", resume=True,
                       progress=sys.stderr.isatty())
    summary = summarise(table, study)
    summary.to_csv(folder / "summary.csv", index=False)
    title = _title(points, TITLES[study])
    for path in [folder / "figure.png"] + ([Path(figure)] if figure else []):
        draw(summary, study, title, path)
    failed = table[table.status != "ok"]
    click.echo(summary.to_string(index=False))
    if len(failed):
        click.echo(f"{len(failed)} point(s) failed; first: {failed.error.iloc[0]}", err=True)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
