"""Text tables of run summaries for the command line: one column per system, with or without seeds."""

from __future__ import annotations

from collections.abc import Sequence

from dpsim.planning.seeds import METHOD
from dpsim.planning.seeds import fmt as fmt_interval


def fmt(value, digits=4) -> str:
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
    ("TTFT p50 / p90 (s)", lambda s: f"{fmt(s['ttft_s']['p50'])} / {fmt(s['ttft_s']['p90'])}"),
    ("TTST p50 (s)", lambda s: s["ttst_s"]["p50"]),
    ("TPOT p50 (s)", lambda s: s["tpot_s"]["p50"]),
    ("SLO attainment", lambda s: s["slo_attainment"]),
    ("storage NIC max/avg", lambda s: s["snic_balance_max_over_avg"]),
    ("reads on the DE side", lambda s: s["read_side_fraction_de"]),
    ("GPU busy prefill / decode", lambda s: f"{fmt(s['gpu_busy_fraction']['prefill'], 3)} / "
                                            f"{fmt(s['gpu_busy_fraction']['decode'], 3)}"),
    ("invariants", lambda s: "ok" if s["invariants_ok"] else "FAILED"),
]

# Rows shown when the scenario has a cost: section (dpsim/scenario/cost.py).
COST_ROWS = [
    ("cluster $/hour", lambda s: s["cost"]["cluster_usd_per_hour"]),
    ("GPU-hours", lambda s: s["cost"]["gpu_hours"]),
    ("$ per million tokens", lambda s: s["cost"]["usd_per_million_tokens"]),
    ("$ per M output tokens", lambda s: s["cost"]["usd_per_million_output_tokens"]),
    ("$ per agent trajectory", lambda s: s["cost"]["usd_per_trajectory"]),
]

# (label, flat summary key) of the table of several seeds (dpsim.planning.sweep.flatten names).
SEED_ROWS = [
    ("JCT (s)", "jct_s"), ("turns", "turns"), ("prompt tokens/s", "prompt_tokens_per_s"),
    ("generated tokens/s", "gen_tokens_per_s"), ("TTFT p50 (s)", "ttft_s_p50"), ("TTFT p90 (s)", "ttft_s_p90"),
    ("TPOT p50 (s)", "tpot_s_p50"), ("SLO attainment", "slo_attainment"),
    ("storage NIC max/avg", "snic_balance_max_over_avg"), ("reads on the DE side", "read_side_fraction_de"),
    ("GPU busy prefill", "gpu_busy_fraction_prefill"), ("GPU busy decode", "gpu_busy_fraction_decode"),
]


def summary_table(columns: dict[str, dict]) -> str:
    """One column per run summary (with the cost rows when the summaries have a cost)."""
    names = list(columns)
    rows = SUMMARY_ROWS + (COST_ROWS if all("cost" in columns[n] for n in names) else [])
    width = max(len(r[0]) for r in rows) + 2
    lines = ["".ljust(width) + "".join(n.rjust(16) for n in names)]
    for label, get in rows:
        lines.append(label.ljust(width) + "".join(fmt(get(columns[n])).rjust(16) for n in names))
    return "\n".join(lines)


def interval_table(columns: dict[str, dict[str, dict]], seeds: list[int], extra: Sequence[tuple[str, str]] = ()) -> str:
    """One column per system: mean ±95 % half-width of each metric over the seeds
    (columns: {system: {flat key: dpsim.planning.seeds.interval}})."""
    names = list(columns)
    cost = [(label, f"cost_{key}") for label, key in (
        ("GPU-hours", "gpu_hours"), ("$ per million tokens", "usd_per_million_tokens"),
        ("$ per agent trajectory", "usd_per_trajectory"))]
    rows = SEED_ROWS + (cost if all("cost_gpu_hours" in columns[n] for n in names) else []) + list(extra)
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"mean ±95 % half-width over {len(seeds)} seeds ({', '.join(map(str, seeds))}; {METHOD})",
             "".ljust(width) + "".join(n.rjust(20) for n in names)]
    for label, key in rows:
        lines.append(label.ljust(width) + "".join(fmt_interval(columns[n].get(key, {})).rjust(20) for n in names))
    return "\n".join(lines)
