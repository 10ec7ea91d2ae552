"""Figures from result frames, written as PNG files.

Figures are made with `matplotlib.figure.Figure` (not pyplot), which renders to files with the Agg
canvas without selecting a backend: importing this module leaves a notebook's backend as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dpsim.metrics.guidance import profile_label
from dpsim.scenario.config import Scenario


def new_figure(width_in: float, height_in: float):
    """A figure and its axes, independent of pyplot and its backend."""
    fig = Figure(figsize=(width_in, height_in))
    return fig, fig.subplots()


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def nic_utilisation(links: pd.DataFrame, kind: str, title: str, path: Path) -> Path:
    """Utilisation over time of every link of `kind` (e.g. "snic.rx"), one line per node."""
    fig, ax = new_figure(8, 3.5)
    data = links[links.kind == kind]
    for node, rows in data.groupby("node"):
        util = (rows.bytes_high + rows.bytes_low) / (rows.capacity_bytes_per_s * rows.bin_s)
        ax.plot(rows.t_s, util, label=node, lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("utilisation")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    if data.node.nunique() <= 12:
        ax.legend(fontsize=7, ncol=4)
    return save(fig, path)


def compute_nic_utilisation(links: pd.DataFrame, path: Path, title: str = "compute NICs (per node and direction)") -> Path:
    """Mean utilisation of the compute NICs per node (tx and rx averaged over the node's GPUs)."""
    cn = links[links.kind.str.startswith("cnic")].copy()
    cn["node_dir"] = cn.node + "." + cn.kind.str.split(".").str[-1]
    cn["util"] = (cn.bytes_high + cn.bytes_low) / (cn.capacity_bytes_per_s * cn.bin_s)
    fig, ax = new_figure(8, 3.5)
    for name, rows in cn.groupby("node_dir"):
        g = rows.groupby("t_s").util.sum() / rows.kind.nunique()
        ax.plot(g.index, g.values, label=name, lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean utilisation")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    return save(fig, path)


def ttft_cdf(turns_by_label: dict[str, pd.DataFrame], path: Path, slo_s: float | None = None,
             title: str = "") -> Path:
    fig, ax = new_figure(5, 3.5)
    for label, turns in turns_by_label.items():
        values = np.sort(turns.ttft_s.dropna().to_numpy())
        if len(values):
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)
    if slo_s:
        ax.axvline(slo_s, color="grey", ls="--", lw=1, label="SLO")
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (s)")
    ax.set_ylabel("fraction of turns")
    if title:
        ax.set_title(title, fontsize=8)
    ax.legend()
    return save(fig, path)


def run_context(result) -> str:
    """'system, model layout, profile' of a run, for figure titles."""
    s = result.summary
    try:
        profile = profile_label(Scenario.model_validate(result.run_info["scenario"]))
    except Exception:  # noqa: BLE001 - a run written by another version: say less
        profile = "profile unknown"
    return f"{s['policy']}, {s['model']} {s['layout']}, {profile}"


def write_run_plots(result, out: Path, slo_s: float | None = None) -> list[Path]:
    out = Path(out)
    where = run_context(result)
    return [
        nic_utilisation(result.links, "snic.rx", f"storage NIC reads — {where}", out / "storage_nic_utilisation.png"),
        compute_nic_utilisation(result.links, out / "compute_nic_utilisation.png",
                                f"compute NICs (per node and direction) — {where}"),
        ttft_cdf({result.summary["policy"]: result.turns}, out / "ttft_cdf.png", slo_s, f"TTFT — {where}"),
    ]
