"""Overlay figures of `dpsim report`: latency CDFs, utilisation of every link resource over time,
JCT and capacity per configuration. Each returns PNG bytes; every title names model, layout and profile."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dpsim.plots import new_figure

# Link resources of the links frame (dpsim.results.links_frame), by kind prefix and direction.
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


def utilisation_over_time(links_by_label: dict[str, pd.DataFrame], title: str = "") -> bytes:
    """One panel per link resource; one line per node for a single run, else the node mean (solid) and
    the busiest node (dotted) of each run."""
    panels = [(name, pattern) for name, pattern in RESOURCES
              if any(not _utilisation(links, pattern).empty for links in links_by_label.values())]
    fig = Figure(figsize=(7.5, 1.7 * max(len(panels), 1) + 0.6))
    axes = fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
    single = len(links_by_label) == 1
    for ax, (name, pattern) in zip(axes, panels):
        for i, (label, links) in enumerate(links_by_label.items()):
            table = _utilisation(links, pattern)
            if table.empty:
                continue
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
