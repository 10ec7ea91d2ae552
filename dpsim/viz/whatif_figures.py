"""Figures and answer tables of the what-if studies 1, 3 and 5 (docs/whatif.md), from their sweep tables.

    python -m dpsim.viz.whatif_figures dram-tier    runs/whatif/dram-tier/results.parquet    docs/figures/whatif-dram-tier.png
    python -m dpsim.viz.whatif_figures de-bypass    runs/whatif/de-bypass/results.parquet    docs/figures/whatif-de-bypass.png
    python -m dpsim.viz.whatif_figures tool-latency runs/whatif/tool-latency/results.parquet docs/figures/whatif-tool-latency.png

Each prints its answer table (median and worst over the seeds of every point) and draws the figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from dpsim.scenario import units

HARDWARE = "H800 preset"  # every study runs on scenarios/presets/h800-node.yaml, no testbed profile


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame.status != "ok"]
    if len(bad):
        raise SystemExit(f"{len(bad)} points failed: {bad.error.iloc[0]}")
    return frame.copy()


def _spread(frame: pd.DataFrame, by: list[str], column: str, worst: str = "max") -> pd.DataFrame:
    """Median and worst (max or min) of `column` over seeds, per group."""
    grouped = frame.groupby(by, dropna=False)[column]
    return pd.DataFrame({"median": grouped.median(), "worst": grouped.max() if worst == "max" else grouped.min()})


def _gain(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per seed, Basic JCT / DualPath JCT; then median and worst (lowest) over seeds."""
    table = frame.pivot_table(index=keys + ["run.seed"], columns="policy.system", values="jct_s")
    table["gain"] = table["basic"] / table["dualpath"]
    return _spread(table.reset_index(), keys, "gain", worst="min")


def dram_tier(frame: pd.DataFrame, out: Path) -> pd.DataFrame:
    f = _ok(frame)
    f["tier"] = f["hardware.dram_tier.enabled"].astype(str).str.lower() != "false"
    capacity = units.parse_bytes("1.5TB")
    f["pool_gb"] = [(capacity - units.parse_bytes(r)) / 1e9 if t else float("nan")
                    for r, t in zip(f["hardware.dram_tier.reserved_per_node"].fillna("0GB"), f.tier)]
    tier = f[f.tier]
    jct = _spread(tier, ["pool_gb", "policy.system"], "jct_s").unstack()
    hits = _spread(tier, ["pool_gb"], "dram_tier_hit_fraction", worst="min")
    gain = _gain(tier, ["pool_gb"])
    off = _spread(f[~f.tier], ["policy.system"], "jct_s")
    full = tier[tier.pool_gb == tier.pool_gb.max()]
    working_set_gb = float((full.dram_tier_peak_used_fraction * full.pool_gb).max())
    table = pd.DataFrame({"basic_jct_median_s": jct[("median", "basic")], "basic_jct_worst_s": jct[("worst", "basic")],
                          "dualpath_jct_median_s": jct[("median", "dualpath")],
                          "dualpath_jct_worst_s": jct[("worst", "dualpath")],
                          "gain_median": gain["median"], "gain_worst": gain["worst"],
                          "hit_fraction_median": hits["median"], "hit_fraction_worst": hits["worst"]})
    print(f"peak KV per node with the 1.5 TB pool (the x-axis scale): {working_set_gb:.1f} GB")
    print("no tier:", {k: round(v, 1) for k, v in off["median"].items()}, "worst", {k: round(v, 1) for k, v in off["worst"].items()})
    fig = Figure(figsize=(10, 3.8))
    a1, a2 = fig.subplots(1, 2)
    shown = table[table.index <= 4 * working_set_gb]
    x = shown.index / working_set_gb
    for system, color in (("basic", "tab:blue"), ("dualpath", "tab:orange")):
        a1.plot(x, shown[f"{system}_jct_median_s"], "o-", color=color, label=f"{system} + DRAM tier (median)")
        a1.plot(x, shown[f"{system}_jct_worst_s"], "v", color=color, ms=4, alpha=0.6, label=f"{system} + tier (worst seed)")
        a1.axhline(off.loc[system, "median"], color=color, ls="--", lw=1, label=f"{system}, no tier")
    a1.set_xlabel("DRAM pool per node / peak KV per node (pool unlimited)")
    a1.set_ylabel("JCT (s)")
    a1.legend(fontsize=7)
    a2.plot(x, shown.hit_fraction_median, "o-", color="tab:green", label="hit KV served from DRAM")
    a2.plot(x, shown.gain_median, "s-", color="tab:red", label="DualPath gain (Basic/DualPath JCT)")
    a2.set_xlabel("DRAM pool per node / peak KV per node (pool unlimited)")
    a2.legend(fontsize=7)
    a2.set_ylim(bottom=0)
    fig.suptitle(f"DRAM tier crossover: DS 27B 1P1D, 64K set, 128 agents, offline, {HARDWARE} "
                 f"(peak KV {working_set_gb:.0f} GB/node)", fontsize=9)
    _save(fig, out)
    return table


def de_bypass(frame: pd.DataFrame, out: Path) -> pd.DataFrame:
    f = _ok(frame)
    f["bypass"] = f["policy.de_bypass"].astype(str).str.lower() == "true"
    f["host_gbs"] = [units.parse_bandwidth(v) / 1e9 for v in f["hardware.host.memory_bandwidth"]]
    jct = _spread(f, ["host_gbs", "bypass"], "jct_s").unstack()
    per_seed = f.pivot_table(index=["host_gbs", "run.seed"], columns="bypass", values="jct_s")
    per_seed["speedup"] = per_seed[False] / per_seed[True]
    speedup = _spread(per_seed.reset_index(), ["host_gbs"], "speedup", worst="min")
    on = f[f.bypass]
    early = _spread(on, ["host_gbs"], "de_bypass_hbm_held_early_peak")
    early_mean = _spread(on, ["host_gbs"], "de_bypass_hbm_held_early_mean")
    # Bytes through the decode node's DRAM: every transfer kind that touches it once (dpsim.kernel.resources.hardware
    # paths); with the bypass the hand-off does not (tests/test_de_bypass.py checks this closed form).
    tags = [f"bytes_by_path_{t}" for t in ("storage_read_de_side", "kv_de_to_pe", "kv_pe_to_de", "kv_h2d_de",
                                           "kv_d2h_de", "storage_write")]
    f["de_dram_bytes"] = [sum(r[t] for t in tags if t in r and pd.notna(r[t])) - (r["bytes_by_path_kv_pe_to_de"] if b else 0)
                          for (_, r), b in zip(f.iterrows(), f.bypass)]
    dram = f.groupby(["host_gbs", "bypass"]).de_dram_bytes.median().unstack()
    table = pd.DataFrame({"buffer_jct_median_s": jct[("median", False)], "buffer_jct_worst_s": jct[("worst", False)],
                          "bypass_jct_median_s": jct[("median", True)], "bypass_jct_worst_s": jct[("worst", True)],
                          "speedup_median": speedup["median"], "speedup_worst": speedup["worst"],
                          "hbm_early_mean": early_mean["median"], "hbm_early_peak_worst": early["worst"],
                          "de_dram_traffic_cut": 1 - dram[True] / dram[False]})
    ttft = f.groupby(["host_gbs", "bypass"]).ttft_s_p50.median().unstack()
    table["buffer_ttft_p50_s"], table["bypass_ttft_p50_s"] = ttft[False], ttft[True]
    fig = Figure(figsize=(10, 3.8))
    a1, a2 = fig.subplots(1, 2)
    a1.plot(table.index, table.buffer_jct_median_s, "o-", label="DE buffer (paper), median")
    a1.plot(table.index, table.bypass_jct_median_s, "s-", label="bypass into HBM, median")
    a1.plot(table.index, table.buffer_jct_worst_s, "v", color="tab:blue", alpha=0.6, label="worst seed")
    a1.plot(table.index, table.bypass_jct_worst_s, "v", color="tab:orange", alpha=0.6)
    a1.set_xscale("log")
    a1.set_xlabel("host memory bandwidth per node (GB/s)")
    a1.set_ylabel("JCT (s)")
    a1.legend(fontsize=7)
    a2.plot(table.index, 100 * table.hbm_early_peak_worst, "o-", color="tab:red", label="HBM held early, peak (% of decode KV HBM)")
    a2.plot(table.index, 100 * table.hbm_early_mean, "s-", color="tab:purple", label="HBM held early, mean (%)")
    a2.plot(table.index, 100 * table.de_dram_traffic_cut, "^-", color="tab:green",
            label="decode-node DRAM traffic removed (%)")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("host memory bandwidth per node (GB/s)")
    a2.set_ylabel("% (log)")
    a2.set_title("bypass: bandwidth saved vs HBM held early", fontsize=8)
    a2.legend(fontsize=7)
    fig.suptitle(f"DE-buffer bypass: DS 27B 2P1D DualPath, 64K set (40 turns), 96 agents, offline, {HARDWARE}",
                 fontsize=9)
    _save(fig, out)
    return table


def tool_latency(frame: pd.DataFrame, out: Path) -> pd.DataFrame:
    f = _ok(frame)
    f["latency"] = [("Claude Code gaps" if s == "claude_code" else f"{units.parse_time(t):g} s")
                    for s, t in zip(f["workload.tool_latency_source"], f["workload.tool_latency"].fillna("0s"))]
    keys = ["latency", "layout"]
    gain = _gain(f, keys)
    jct = _spread(f[f["policy.system"] == "dualpath"], keys, "jct_s")
    basic = _spread(f[f["policy.system"] == "basic"], keys, "jct_s")
    per_seed = f.pivot_table(index=keys + ["run.seed"], columns="policy.system", values="ttft_s_mean")
    per_seed["ttft_gain"] = per_seed["basic"] / per_seed["dualpath"]
    ttft_gain = _spread(per_seed.reset_index(), keys, "ttft_gain", worst="min")
    table = pd.DataFrame({"gain_median": gain["median"], "gain_worst": gain["worst"],
                          "dualpath_jct_median_s": jct["median"], "dualpath_jct_worst_s": jct["worst"],
                          "basic_jct_median_s": basic["median"], "basic_jct_worst_s": basic["worst"],
                          "ttft_mean_gain_median": ttft_gain["median"], "ttft_mean_gain_worst": ttft_gain["worst"]})
    order = [o for o in ["0 s", "10 s", "30 s", "Claude Code gaps"] if o in table.index.get_level_values("latency")]
    layouts = sorted(table.index.get_level_values("layout").unique())
    fig = Figure(figsize=(10, 3.8))
    a1, a2 = fig.subplots(1, 2)
    for layout in layouts:
        rows = table.xs(layout, level="layout").reindex(order)
        a1.plot(range(len(order)), rows.gain_median, "o-", label=f"{layout} (median)")
        a1.plot(range(len(order)), rows.gain_worst, "v", color=a1.lines[-1].get_color(), alpha=0.6)
        a2.plot(range(len(order)), rows.ttft_mean_gain_median, "o-", label=f"{layout} (median)")
        a2.plot(range(len(order)), rows.ttft_mean_gain_worst, "v", color=a2.lines[-1].get_color(), alpha=0.6)
    best = {system: [table.xs(lat, level="latency")[f"{system}_jct_median_s"].idxmin() for lat in order]
            for system in ("dualpath", "basic")}
    a1.axhline(1.0, color="grey", lw=0.8)
    a1.set_xticks(range(len(order)), order, fontsize=8)
    a1.set_ylabel("DualPath gain (Basic JCT / DualPath JCT)")
    a1.legend(fontsize=7, title="worst seed: v", title_fontsize=7)
    a2.set_xticks(range(len(order)), [f"{o}\nbest D {d}, B {b}" for o, d, b in zip(order, best["dualpath"], best["basic"])],
                  fontsize=7)
    a2.axhline(1.0, color="grey", lw=0.8)
    a2.set_ylabel("TTFT gain (Basic / DualPath mean TTFT)")
    a2.set_yscale("log")
    a2.legend(fontsize=7)
    a2.set_title("fastest layout by JCT: D = DualPath, B = Basic", fontsize=8)
    fig.suptitle(f"Tool latency per turn: DS 27B on 4 nodes, 64K set (60 turns), 256 agents, offline, {HARDWARE}",
                 fontsize=9)
    _save(fig, out)
    print("fastest layout per latency:", {lat: (d, b) for lat, d, b in zip(order, best["dualpath"], best["basic"])},
          "(DualPath, Basic)")
    return table


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


STUDIES = {"dram-tier": dram_tier, "de-bypass": de_bypass, "tool-latency": tool_latency}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in STUDIES:
        print(f"usage: python -m dpsim.viz.whatif_figures {{{'|'.join(STUDIES)}}} TABLE.parquet OUT.png", file=sys.stderr)
        return 2
    study, table, out = argv
    frame = pd.read_parquet(table) if table.endswith(".parquet") else pd.read_csv(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(STUDIES[study](frame, Path(out)).round(3).to_string())
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
