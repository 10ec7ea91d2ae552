"""Overlay figures of `dpsim report`: latency CDFs, utilisation of every resource over time,
JCT and capacity per configuration. Each returns PNG bytes; every title names model, layout and profile."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dpsim.scenario.config import ModelConfig
from dpsim.viz.plots import new_figure

# Link resources of the links frame (dpsim.metrics.results.links_frame), by kind prefix and direction.
RESOURCES = [("storage NIC read", "snic.rx"), ("storage NIC write", "snic.tx"), ("compute NIC send", "cnic*.tx"),
             ("compute NIC receive", "cnic*.rx"), ("host DRAM", "dram")]


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def latency_cdf(turns_by_label: dict[str, pd.DataFrame], column: str, unit_label: str, title: str = "",
                slo_s: float | None = None, scale: float = 1.0) -> bytes:
    """CDF of a per-turn latency (ttft_s, tpot_s) of every run, overlaid."""
    fig, ax = new_figure(6.4, 3.6)
    for label, turns in turns_by_label.items():
        values = np.sort(turns[column].dropna().to_numpy(float)) * scale
        values = values[values > 0]
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=label, lw=1.3)
    if slo_s:
        ax.axvline(slo_s * scale, color="grey", ls="--", lw=1, label="SLO")
    ax.set_xscale("log")
    ax.set_xlabel(unit_label)
    ax.set_ylabel("fraction of turns")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def _utilisation(links: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Utilisation per (time bin, node) of the links matching `pattern` (mean over a node's GPUs' NICs)."""
    if "*" in pattern:
        head, tail = pattern.split("*")
        rows = links[links.kind.str.startswith(head) & links.kind.str.endswith(tail)]
    else:
        rows = links[links.kind == pattern]
    if rows.empty:
        return pd.DataFrame()
    util = (rows.bytes_high + rows.bytes_low) / (rows.capacity_bytes_per_s * rows.bin_s)
    per_link = rows.assign(util=util).groupby(["t_s", "node"]).util.mean()
    return per_link.unstack("node").fillna(0.0)


def _covered(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of each bin [edges[i], edges[i+1]) covered by the union of the intervals."""
    order = np.argsort(starts)
    merged: list[list[float]] = []
    for s0, e0 in zip(starts[order], ends[order]):
        if merged and s0 <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e0)
        else:
            merged.append([s0, e0])
    if not merged:
        return np.zeros(len(edges) - 1)
    s, e = np.array(merged).T
    before = np.concatenate([[0.0], np.cumsum(e - s)])  # covered time of the intervals before each one

    def covered_until(x):
        i = np.searchsorted(s, x, side="right") - 1
        inside = np.clip(x - s[np.maximum(i, 0)], 0.0, (e - s)[np.maximum(i, 0)])
        return np.where(i < 0, 0.0, before[np.maximum(i, 0)] + inside)

    return np.diff(covered_until(edges)) / np.diff(edges)


def engine_tables(result, bin_s: float) -> dict[str, pd.DataFrame]:
    """Per node and time bin, from the turns: the share of its prefill engines with a prompt in
    progress (prefill start -> first token; waits for KV included, so occupancy rather than compute),
    and the share of its decode HBM held by KV (dispatch -> last token, as the capacity search counts it)."""
    turns, summary = result.turns, result.summary
    g = int(result.run_info["scenario"]["cluster"]["gpus_per_node"])
    end = float(np.nanmax(turns.t_finish.to_numpy(float))) if turns.t_finish.notna().any() else 0.0
    if end <= 0:
        return {}
    edges = np.arange(0.0, end + bin_s, bin_s)
    prefill: dict = {}
    busy = turns.dropna(subset=["t_prefill_start", "t_first_token"])
    for pe, rows in busy.groupby("pe"):
        prefill.setdefault(f"P{int(pe) // g}", []).append(
            _covered(rows.t_prefill_start.to_numpy(float), rows.t_first_token.to_numpy(float), edges))
    out = {"prefill engines busy": pd.DataFrame({n: np.mean(v, axis=0) for n, v in sorted(prefill.items())},
                                                index=edges[:-1])}
    capacity = summary.get("decode_hbm_kv_capacity_bytes")
    decode_nodes = int(result.run_info["scenario"]["cluster"]["decode_nodes"])
    if capacity:
        kv = ModelConfig(**result.run_info["scenario"]["model"]).spec().kv_bytes_per_token
        held = turns[turns.de >= 0]
        middle = edges[:-1] + bin_s / 2
        levels = {}
        for node, rows in held.groupby(held.de // g):
            size = (rows.input_tokens + rows.output_tokens).to_numpy(float) * kv
            times = np.concatenate([rows.t_dispatch.to_numpy(float), np.nan_to_num(rows.t_finish.to_numpy(float),
                                                                                     nan=end)])
            order = np.argsort(times, kind="stable")
            level = np.cumsum(np.concatenate([size, -size])[order])
            at = np.searchsorted(times[order], middle, side="right") - 1
            levels[f"D{int(node)}"] = np.where(at >= 0, level[np.maximum(at, 0)], 0.0) / (capacity / decode_nodes)
        out["decode HBM (KV held)"] = pd.DataFrame(levels, index=edges[:-1])
    return out


def utilisation_over_time(runs: dict, title: str = "") -> bytes:
    """One panel per resource: the link resources (from links), prefill engines and decode HBM (from
    turns). One line per node for a single run, else the node mean (solid) and the busiest node
    (dotted) of each run."""
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    for label, result in runs.items():
        bin_s = float(result.links.bin_s.iloc[0]) if len(result.links) else 1.0
        per_run = {name: _utilisation(result.links, pattern) for name, pattern in RESOURCES}
        per_run.update(engine_tables(result, bin_s))
        for name, table in per_run.items():
            if not table.empty:
                tables.setdefault(name, {})[label] = table
    names = [n for n, _ in RESOURCES if n in tables] + [n for n in tables if n not in dict(RESOURCES)]
    fig = Figure(figsize=(7.5, 1.6 * max(len(names), 1) + 0.6))
    axes = fig.subplots(max(len(names), 1), 1, sharex=True, squeeze=False)[:, 0]
    single = len(runs) == 1
    for ax, name in zip(axes, names):
        for label, table in tables[name].items():
            if single:
                for node in table.columns:
                    ax.plot(table.index, table[node], lw=0.9, label=node)
            else:
                line, = ax.plot(table.index, table.mean(axis=1), lw=1.1, label=f"{label} (mean)")
                ax.plot(table.index, table.max(axis=1), lw=0.8, ls=":", color=line.get_color())
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(name, fontsize=7)
        if len(ax.get_lines()) <= 16:
            ax.legend(fontsize=6, ncol=4, loc="upper right")
    axes[-1].set_xlabel("simulated time (s)")
    fig.suptitle(title + ("" if single else "  (dotted: busiest node)"), fontsize=9)
    return _png(fig)


def bars(values: dict[str, float], errors: dict[str, float | None] | None, ylabel: str, title: str = "") -> bytes:
    """One bar per configuration, with the 95 % half-width as an error bar where known."""
    fig, ax = new_figure(max(4.0, 0.9 * len(values) + 2), 3.4)
    labels = list(values)
    yerr = [(errors or {}).get(k) or 0.0 for k in labels]
    ax.bar(range(len(labels)), [values[k] for k in labels], yerr=yerr if any(yerr) else None, capsize=4,
           color="#4477aa")
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0, ha="right" if len(labels) > 3
                  else "center", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def capacity_trials(trials: pd.DataFrame, stat_column: str, slo_s: float, title: str = "") -> bytes:
    """The latency statistic of every capacity trial against its APS, one line per system."""
    fig, ax = new_figure(6.4, 3.6)
    by = ["system", "seed"] if "seed" in trials else ["system"]
    colours: dict[str, str] = {}
    for key, rows in trials.groupby(by):
        system = key[0] if isinstance(key, tuple) else key
        rows = rows.sort_values("aps")
        line, = ax.plot(rows.aps, rows[stat_column], marker="o", lw=1.2, color=colours.get(system),
                        label=None if system in colours else system)
        colours.setdefault(system, line.get_color())
    ax.axhline(slo_s, color="grey", ls="--", lw=1, label="TTFT SLO")
    ax.set_xlabel("agent arrivals per second (APS)")
    ax.set_ylabel(stat_column.replace("_s", " (s)").replace("_", " "))
    ax.set_title(title + "\n(a trial stops at the SLO break, so failing points sit just above the SLO)",
                 fontsize=8)
    ax.legend(fontsize=7)
    return _png(fig)
