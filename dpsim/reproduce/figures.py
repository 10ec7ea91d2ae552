"""The paper's figures drawn from points.csv (and the balance series), one PNG per experiment.

Figures are `matplotlib.figure.Figure`s (not pyplot), saved with the Agg canvas without selecting a
backend: importing this module leaves a notebook's backend as it was (as dpsim.viz.plots)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _subplots(*grid, figsize):
    """A figure and its axes, independent of pyplot and its backend."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid)


GROUP_COLUMNS = ["model", "layout", "mal", "agents", "aps", "scale"]


def _fmt(column: str, value) -> str:
    if pd.isna(value):
        return ""
    if column == "mal":
        return f"{int(value) // 1024}K"
    if column == "agents":
        return f"{int(value)} ag"
    if column == "scale":
        return f"x{value:g}" if isinstance(value, float) else f"x{value}"
    if column == "aps":
        return f"{value:g} APS"
    return str(value)


def _groups(rows: pd.DataFrame) -> tuple[list[str], pd.Series]:
    """The columns that vary within an experiment and one label per row from them."""
    varying = [c for c in GROUP_COLUMNS if c in rows and rows[c].nunique(dropna=True) > 1]
    label = rows.apply(lambda r: " ".join(_fmt(c, r[c]) for c in varying) or "all", axis=1)
    return varying, label


def _in_order(rows: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """Rows of a table merged from several runs in the experiment's order: groups by MAL, agents,
    APS, ..., ascending; systems as the experiment lists them."""
    rank = {name: i for i, name in enumerate(dict.fromkeys(systems))}
    keys = [c for c in GROUP_COLUMNS if c in rows and c not in ("model", "layout")]
    ordered = rows.assign(_system=rows.policy.map(lambda p: rank.get(p, len(rank))))
    for column in keys:
        ordered[f"_{column}"] = pd.to_numeric(ordered[column], errors="coerce")
    ordered = ordered.sort_values([f"_{c}" for c in keys] + ["_system"], kind="stable", na_position="first")
    return ordered.drop(columns=[c for c in ordered if c.startswith("_")])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def bars(rows: pd.DataFrame, title: str, path: Path, value: str = "jct_s", ylabel: str = "JCT (s)") -> Path:
    """Grouped bars: one group per (agents x MAL, or layout, or scale), one bar per system."""
    rows = rows.copy()
    _, rows["group"] = _groups(rows)
    groups = list(dict.fromkeys(rows.group))
    policies = list(dict.fromkeys(rows.policy))
    width = 0.8 / max(len(policies), 1)
    fig, ax = _subplots(figsize=(max(6, 0.9 * len(groups) * max(len(policies), 1) * 0.6 + 2), 3.8))
    x = np.arange(len(groups))
    for i, policy in enumerate(policies):
        sub = rows[rows.policy == policy].set_index("group")[value]
        ax.bar(x + (i - (len(policies) - 1) / 2) * width, [sub.get(g, np.nan) for g in groups], width, label=policy)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def scale_online(rows: pd.DataFrame, title: str, path: Path, slo_ttft_s: float = 4.0,
                 slo_tpot_s: float = 0.05) -> Path:
    """Online scale-out: TTFT, TTST and TPOT (p50 bars, p90 ticks) per layout, SLO lines dashed."""
    rows = rows.copy()
    _, rows["group"] = _groups(rows)
    panels = [("ttft_s", "TTFT (s)", slo_ttft_s), ("ttst_s", "TTST (s)", None), ("tpot_s", "TPOT (s)", slo_tpot_s)]
    fig, axes = _subplots(1, 3, figsize=(12, 3.8))
    x = np.arange(len(rows))
    for ax, (metric, label, slo) in zip(axes, panels):
        ax.bar(x, rows[f"{metric}_p50"], 0.6, label="p50")
        if f"{metric}_p90" in rows:
            ax.scatter(x, rows[f"{metric}_p90"], marker="_", s=400, color="black", label="p90")
        if slo:
            ax.axhline(slo, color="grey", ls="--", lw=1, label="SLO")
        ax.set_xticks(x)
        ax.set_xticklabels(rows.group, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def ladder(rows: pd.DataFrame, title: str, path: Path) -> Path:
    """Ablation ladder: JCT of each rung relative to Basic, per agent count, with the cut in %."""
    rows = rows.copy()
    _, rows["group"] = _groups(rows)
    rungs = list(dict.fromkeys(rows.policy))
    fig, ax = _subplots(figsize=(7, 3.8))
    width = 0.8 / len(rungs)
    groups = list(dict.fromkeys(rows.group))
    for i, rung in enumerate(rungs):
        values = []
        for g in groups:
            sub = rows[rows.group == g].set_index("policy").jct_s
            values.append(sub.get(rung, np.nan) / sub.iloc[0])
        xs = np.arange(len(groups)) + (i - (len(rungs) - 1) / 2) * width
        ax.bar(xs, values, width, label=rung)
        for xv, v in zip(xs, values):
            if np.isfinite(v) and i:
                ax.text(xv, v, f"-{(1 - v) * 100:.0f}%", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel("JCT / Basic JCT")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def curves(rows: pd.DataFrame, title: str, path: Path, slo_ttft_s: float = 4.0, slo_tpot_s: float = 0.05) -> Path:
    """TTFT, TTST, TPOT and trajectory JCT versus APS, one line per system, SLO lines dashed. TTFT and
    TPOT are means where the rows have them (the statistic the capacity search holds to the SLO)."""
    def stat(metric: str) -> tuple[str, str]:
        mean = f"{metric}_mean"
        return (mean, "mean") if mean in rows and rows[mean].notna().any() else (f"{metric}_p50", "p50")

    (ttft, ttft_stat), (tpot, tpot_stat) = stat("ttft_s"), stat("tpot_s")
    panels = [(ttft, f"TTFT {ttft_stat} (s)", slo_ttft_s), ("ttst_s_p50", "TTST p50 (s)", None),
              (tpot, f"TPOT {tpot_stat} (s)", slo_tpot_s), ("trajectory_jct_s_mean", "trajectory JCT mean (s)", None)]
    fig, axes = _subplots(1, 4, figsize=(14, 3.4))
    for ax, (column, label, slo) in zip(axes, panels):
        for policy, sub in rows.groupby("policy", sort=False):
            if column in sub:
                sub = sub.sort_values("aps")
                ax.plot(sub.aps, sub[column], marker="o", label=policy)
        if slo:
            ax.axhline(slo, color="grey", ls="--", lw=1, label="SLO")
        ax.set_xlabel("APS")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def balance(rows: pd.DataFrame, series: dict, title: str, path: Path) -> Path:
    """Storage-NIC max/avg per window over time, and max/avg attention time per EP-group pass (CDF)."""
    fig, (left, right) = _subplots(1, 2, figsize=(11, 3.6))
    for policy, data in series.items():
        mean = rows.set_index("policy").snic_balance.get(policy, np.nan)
        left.plot(data["t_s"], data["snic_max_over_avg"], lw=1, label=f"{policy} (weighted mean {mean:.2f})")
        attention = np.sort(np.asarray(data["attention_max_over_avg"], dtype=float))
        if attention.size:
            right.plot(attention, np.arange(1, attention.size + 1) / attention.size, label=policy)
    left.set_xlabel("time (s)")
    left.set_ylabel("storage NIC max/avg")
    left.legend(fontsize=8)
    right.set_xlabel("attention time max/avg per prefill pass")
    right.set_ylabel("CDF")
    right.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def cache_compute(rows: pd.DataFrame, title: str, path: Path) -> Path:
    fig, ax = _subplots(figsize=(6.5, 4))
    for model, sub in rows.groupby("model", sort=False):
        sub = sub.sort_values("context_tokens")
        ax.plot(sub.context_tokens / 1024, sub.cache_compute_gb_per_pflop, marker="o", label=model)
    ax.set_yscale("log")
    ax.set_xlabel("context (K tokens)")
    ax.set_ylabel("GB of KV per PFLOP")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pd_bound(rows: pd.DataFrame, title: str, path: Path) -> Path:
    """Storage-NIC utilisation versus P/D, with the analytic bottleneck-free range shaded."""
    fig, ax = _subplots(figsize=(6.5, 3.8))
    rows = rows.sort_values("pd_ratio")
    ax.plot(rows.pd_ratio, rows.snic_utilisation, marker="o", label="all storage NICs")
    for ratio, layout in zip(rows.pd_ratio, rows.layout):
        ax.annotate(layout, (ratio, 0.02), fontsize=7, ha="center")
    lo, hi = rows.pd_lo_analytic.iloc[0], rows.pd_hi_analytic.iloc[0]
    ax.axvspan(lo, hi, color="green", alpha=0.1, label=f"analytic range [{lo:.3g}, {hi:.3g}]")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("P/D")
    ax.set_ylabel("storage NIC read utilisation")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


BREAKDOWN_PARTS = (("queue", "scheduling + queueing"), ("alloc", "allocation"), ("read", "reading KV"),
                   ("prefill", "prefill"))


def breakdown(rows: pd.DataFrame, title: str, path: Path) -> Path:
    """Stacked bars of each point's TTFT split into the paper's four parts (shares of the mean TTFT),
    one bar per system and APS, with the mean TTFT on top."""
    rows = rows[rows[[f"ttft_{p}_share" for p, _ in BREAKDOWN_PARTS]].notna().all(axis=1)] if all(
        f"ttft_{p}_share" in rows for p, _ in BREAKDOWN_PARTS) else rows.iloc[0:0]
    fig, ax = _subplots(figsize=(max(5.0, 0.8 * len(rows) + 2), 4))
    labels = [f"{r.policy}\n{_fmt('aps', r.aps)}" for r in rows.itertuples()]
    bottom = np.zeros(len(rows))
    for part, name in BREAKDOWN_PARTS:
        share = rows[f"ttft_{part}_share"].to_numpy(float) * 100
        ax.bar(range(len(rows)), share, bottom=bottom, label=name)
        bottom += share
    for i, r in enumerate(rows.itertuples()):
        ttft = getattr(r, "ttft_s_mean", None)
        if ttft is not None and not pd.isna(ttft):
            ax.text(i, 101, f"{ttft:.2f} s", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(0, 112)
    ax.set_ylabel("share of mean TTFT (%)")
    ax.set_title(title + "\n(steady state, last window; mean TTFT on top)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def draw_all(table: pd.DataFrame, experiments, folder: Path, series_folders: list[Path]) -> list[Path]:
    """One PNG per experiment (skipping experiments whose points all failed); an experiment's balance
    series comes from the last of `series_folders` that has it (a table merged from several runs)."""
    drawn = []
    for exp in experiments:
        rows = table[(table.experiment == exp.name) & (table.status == "ok")]
        if rows.empty or exp.figure == "none":
            continue
        rows = _in_order(rows, list(exp.system_overrides(False)) + list(exp.system_overrides(True)))
        path = folder / f"{exp.name}.png"
        if exp.figure == "scale" and "aps" in rows and rows.aps.notna().any():
            drawn.append(scale_online(rows, exp.title, path))
        elif exp.figure in ("bars", "scale"):
            drawn.append(bars(rows, exp.title, path))
        elif exp.figure == "capacity":
            drawn.append(bars(rows, exp.title, path, "capacity_aps", "capacity (APS within SLO)"))
        elif exp.figure == "ladder":
            drawn.append(ladder(rows, exp.title, path))
        elif exp.figure == "curves":
            drawn.append(curves(rows, exp.title, path))
        elif exp.figure == "balance":
            files = [f for f in (Path(d) / f"{exp.name}.json" for d in series_folders) if f.exists()]
            data = json.loads(files[-1].read_text()) if files else {}
            drawn.append(balance(rows, data, exp.title, path))
        elif exp.figure == "table":
            drawn.append(cache_compute(rows, exp.title, path))
        elif exp.figure == "pd_bound":
            drawn.append(pd_bound(rows, exp.title, path))
        elif exp.figure == "breakdown":
            drawn.append(breakdown(rows, exp.title, path))
    return drawn
