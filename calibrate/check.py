"""Closure: rebuild the measured experiment in dpsim's fluid network with the profile's parameters,
simulate it, and compare predicted with measured completion times.

The loader experiment is mirrored step for step: the same requests (same blocks, same path, same
per-path worker count), each Full Block one storage read (``io_overhead`` then a flow of the block
over the path's storage link at ``storage_nic.bandwidth x read_efficiency``); on the PE path the
local -> target copy (the profile's host-copy fit, else ``gpu.h2d_bandwidth``); on the DE path each
block is forwarded over the compute link (``compute_nic``) by a forwarder with the same buffer pool
as the real decode agent, and a request completes when its last block has arrived.

The priority experiment (htb classes on the compute link) is mirrored with flows of the two traffic
classes on one link whose capacity is the link's goodput.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .errors import CalibrateError, Unavailable
from .profile import hardware_values, load_profile


def _net():
    try:
        import simpy

        from dpsim.net import Network, TrafficClass
    except ImportError as e:
        raise Unavailable(f"dpsim.net is not importable: {e}") from None
    return simpy, Network, TrafficClass


def _copy_params(profile: dict, hw: dict, source: str = "<profile>") -> tuple[float, float | None]:
    calibration = profile.get("calibration")
    links = calibration.get("links") if isinstance(calibration, dict) else None
    link = links.get("host_copy") if isinstance(links, dict) else None
    if isinstance(link, dict) and link.get("bandwidth_Bps"):
        latency_s, bandwidth = link.get("latency_s", 0.0) or 0.0, link["bandwidth_Bps"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in (latency_s, bandwidth)) or bandwidth <= 0:
            raise CalibrateError(f"{source}: calibration.links.host_copy: latency_s and bandwidth_Bps must be "
                                 f"finite numbers (bandwidth > 0), got {latency_s!r} and {bandwidth!r}")
        return float(latency_s), float(bandwidth)
    return hw["copy_overhead"], hw["h2d_bw"]


def simulate_loader(cfg: dict, requests: list[dict], hw: dict, copy: tuple[float, float | None],
                    de_buffers: int = 3) -> dict[int, tuple[float, float]]:
    """Predicted (t_submit, t_done) per request id."""
    simpy, Network, TrafficClass = _net()
    if hw["storage_bw"] is None:
        raise CalibrateError("profile has no storage_nic.bandwidth: cannot simulate storage reads")
    env = simpy.Environment()
    net = Network(env)
    s_pe = net.add_link("storage_pe", hw["storage_bw"])
    s_de = net.add_link("storage_de", hw["storage_bw"])
    comp = net.add_link("compute", hw["compute_bw"]) if hw["compute_bw"] else None
    block, nblk, depth = cfg["block_size"], cfg["blocks_per_request"], cfg["depth"]
    io = hw["io_overhead"]
    c_alpha, c_beta = copy
    queues = {"pe": [], "de": []}
    for r in sorted(requests, key=lambda r: r["request"]):
        queues[r["path"]].append(r["request"])
    out: dict[int, tuple[float, float]] = {}

    def pe_worker():
        while queues["pe"]:
            i = queues["pe"].pop(0)
            t0 = env.now
            for _ in range(nblk):
                yield env.timeout(io)
                yield net.transfer([s_pe], block, TrafficClass.LOW)
                yield env.timeout(c_alpha + (block / c_beta if c_beta else 0.0))
            out[i] = (t0, env.now)

    def de_worker():
        if comp is None:
            raise CalibrateError("profile has no compute_nic.bandwidth: cannot simulate the DE path")
        free = simpy.Store(env)
        for b in range(de_buffers):
            free.put(b)
        fwd = simpy.Store(env)

        def forwarder():
            while True:
                b, last = yield fwd.get()
                yield net.transfer([comp], block, TrafficClass.LOW)
                yield env.timeout(hw["compute_latency"])  # completion of the last write
                yield free.put(b)
                if last is not None:
                    last.succeed()

        env.process(forwarder())
        while queues["de"]:
            i = queues["de"].pop(0)
            t0 = env.now
            done = env.event()
            for j in range(nblk):
                b = yield free.get()
                yield env.timeout(io)
                yield net.transfer([s_de], block, TrafficClass.LOW)
                yield fwd.put((b, done if j == nblk - 1 else None))
            yield done
            yield env.timeout(hw["compute_latency"])  # the completion notice to the prefill host
            out[i] = (t0, env.now)

    for _ in range(depth):
        if queues["pe"]:
            env.process(pe_worker())
    for _ in range(depth):
        if queues["de"]:
            env.process(de_worker())
    # every worker of a path pops from the same queue; start them all before running
    env.run()
    return out


def scenario_hardware(profile: dict, source: str = "<profile>") -> tuple[dict, str]:
    """The hardware numbers as dpsim itself loads them: the profile's ``hardware`` section validated
    into a scenario by ``dpsim.config`` (so the closure simulates exactly what ``include:`` gives a
    scenario). Falls back to reading the profile directly when dpsim.config is not importable.
    `source` (the profile's file) names it in errors."""
    try:
        from dpsim.config import ScenarioError, validate_scenario
    except ImportError:
        return hardware_values(profile, source), "profile (dpsim.config not importable)"
    calibration = profile.get("calibration")
    data = {"cluster": {"prefill_nodes": 1, "decode_nodes": 1}, "model": {"name": "ds27b"},
            "hardware": profile["hardware"], "calibration": calibration if isinstance(calibration, dict) else None}
    try:
        h = validate_scenario(data, default_source=source).hardware
    except ScenarioError as e:
        raise CalibrateError(f"dpsim rejects the profile: {e}") from None
    hw = hardware_values(profile, source)
    given = profile["hardware"]
    if "storage_nic" in given:
        hw["storage_bw"] = h.storage_nic.bandwidth * h.storage.read_efficiency
    if "storage" in given:
        hw["io_overhead"] = h.storage.io_overhead
    if "compute_nic" in given:
        hw["compute_bw"], hw["compute_latency"] = h.compute_nic.bandwidth, h.compute_nic.latency
    return hw, "dpsim.config scenario"


def closure(profile_path: str, samples: list[dict]) -> dict:
    profile = load_profile(profile_path)
    hw, source = scenario_hardware(profile, str(profile_path))
    copy = _copy_params(profile, hw, str(profile_path))
    finished = {r["experiment"] for r in samples if r.get("kind") == "loader_total"}
    exps = {r["experiment"]: r for r in samples if r.get("kind") == "experiment" and r.get("what") == "loader"
            and r["experiment"] in finished}  # an interrupted run has no total: its requests are partial
    if not exps:
        raise CalibrateError("no loader experiment in the raw samples (run `dpsim-calibrate loader --raw ...`)")
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in samples:
        if r.get("kind") == "loader":
            by_exp[r["experiment"]].append(r)
    rows, all_rel, meas_span, pred_span = [], [], 0.0, 0.0
    per_config: dict[tuple, list] = defaultdict(list)
    for eid, exp in exps.items():
        reqs = by_exp.get(eid, [])
        if not reqs:
            continue
        cfg = exp["config"]
        try:
            pred = simulate_loader(cfg, reqs, hw, copy)
        except CalibrateError as e:  # a profile without the links the experiment used
            raise CalibrateError(f"{profile_path}: {e}") from None
        m_end = max(r["t_done"] for r in reqs)
        p_end = max(t for _, t in pred.values())
        meas_span += m_end
        pred_span += p_end
        for r in reqs:
            p0, p1 = pred[r["request"]]
            m_c, p_c = r["t_done"], p1
            rel = (p_c - m_c) / m_c
            all_rel.append(rel)
            key = (cfg["block_size"], cfg["depth"], cfg["paths"], r["path"])
            per_config[key].append((m_c, p_c, r["bytes"]))
        rows.append({"experiment": eid, "block_size": cfg["block_size"], "depth": cfg["depth"], "paths": cfg["paths"],
                     "requests": len(reqs), "measured_makespan_s": m_end, "predicted_makespan_s": p_end,
                     "rel_err": (p_end - m_end) / m_end,
                     "measured_bw": sum(r["bytes"] for r in reqs) / m_end,
                     "predicted_bw": sum(r["bytes"] for r in reqs) / p_end})
    if not rows:
        raise CalibrateError("loader experiments have no request records")
    table = []
    for (bs, depth, paths, path), v in sorted(per_config.items()):
        m = np.array([x[0] for x in v])
        p = np.array([x[1] for x in v])
        table.append({"block_size": bs, "depth": depth, "paths": paths, "path": path, "requests": len(v),
                      "measured_mean_completion_s": float(m.mean()), "predicted_mean_completion_s": float(p.mean()),
                      "mean_rel_err": float(((p - m) / m).mean()), "max_abs_rel_err": float(np.abs((p - m) / m).max()),
                      "measured_end_s": float(m.max()), "predicted_end_s": float(p.max())})
    return {
        "max_config_rel_err": max(abs(t["mean_rel_err"]) for t in table),
        "profile": str(profile_path),
        "parameters_from": source,
        "parameters": {**hw, "copy_overhead_used": copy[0], "copy_bw_used": copy[1]},
        "experiments": rows,
        "per_config": table,
        "makespan_rel_err": (pred_span - meas_span) / meas_span,
        "mean_abs_rel_err": float(np.mean(np.abs(all_rel))),
        "mean_rel_err": float(np.mean(all_rel)),
    }


def format_closure(res: dict) -> str:
    lines = ["experiment                        paths depth  block[B]  reqs  measured[s] predicted[s]  err[%]"
             "  meas[MB/s] pred[MB/s]"]
    for r in res["experiments"]:
        lines.append(f"{r['experiment']:<34}{r['paths']:>5}{r['depth']:>6}{r['block_size']:>10}{r['requests']:>6}"
                     f"{r['measured_makespan_s']:>13.4f}{r['predicted_makespan_s']:>13.4f}{r['rel_err'] * 100:>8.2f}"
                     f"{r['measured_bw'] / 1e6:>12.2f}{r['predicted_bw'] / 1e6:>11.2f}")
    lines.append(f"parameters from the {res.get('parameters_from', 'profile')}: storage "
                 f"{(res['parameters']['storage_bw'] or 0) / 1e6:.3f} MB/s per link, io_overhead "
                 f"{res['parameters']['io_overhead'] * 1e6:.1f} us, compute {(res['parameters']['compute_bw'] or 0) / 1e6:.3f} MB/s")
    lines.append("per size / concurrency / path (request completion times):")
    for t in res["per_config"]:
        lines.append(f"  block {t['block_size']} B depth {t['depth']} {t['paths']}/{t['path']}: {t['requests']} requests, "
                     f"mean completion measured {t['measured_mean_completion_s']:.4f} s predicted "
                     f"{t['predicted_mean_completion_s']:.4f} s ({t['mean_rel_err'] * 100:+.2f} %), "
                     f"max |err| {t['max_abs_rel_err'] * 100:.2f} %")
    lines.append(f"makespan error {res['makespan_rel_err'] * 100:+.2f} %, worst per-configuration mean error "
                 f"{res['max_config_rel_err'] * 100:.2f} %, mean |error| per request {res['mean_abs_rel_err'] * 100:.2f} %"
                 " (single requests also carry TCP's short-term unfairness between streams, which a fluid model"
                 " does not reproduce)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ priority
def simulate_flows(flows: list[dict], capacity: float, low_share: float, classes: dict | None = None) -> list[float]:
    """Predicted end times of flows [{bytes, t_start, priority}] sharing one link; the flow(s) with
    the highest SO_PRIORITY class id ... ``classes`` maps priority -> "high"/"low" (default: the
    lowest htb minor id = high)."""
    simpy, Network, TrafficClass = _net()
    env = simpy.Environment()
    net = Network(env, low_class_share=low_share)
    link = net.add_link("compute", capacity)
    prios = sorted({f["priority"] for f in flows if f["priority"] is not None})
    classes = classes or {p: ("high" if p == prios[0] and len(prios) > 1 else "low") for p in prios}
    ends = [0.0] * len(flows)

    def run(i, f):
        yield env.timeout(f["t_start"])
        cls = TrafficClass.HIGH if classes.get(f["priority"]) == "high" else TrafficClass.LOW
        yield net.transfer([link], f["bytes"], cls)
        ends[i] = env.now

    for i, f in enumerate(flows):
        env.process(run(i, f))
    env.run()
    return ends


def priority_closure(samples: list[dict], capacity: float, low_share: float = 0.01) -> dict:
    """Measured versus predicted slowdown of the low-priority flow beside a high-priority one."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in samples:
        if r.get("kind") == "priority":
            groups[r["group"]].append(r)
    alone = [g for g in groups.values() if len(g) == 1]
    mixed = [g for g in groups.values() if len(g) == 2 and len({r["priority"] for r in g}) == 2]
    if not alone or not mixed:
        raise CalibrateError("priority closure needs a low-priority flow alone and beside a high-priority flow")
    out = []
    for g in mixed:
        g = sorted(g, key=lambda r: r["flow"])
        lo_p = max(r["priority"] for r in g)
        low = next(r for r in g if r["priority"] == lo_p)
        high = next(r for r in g if r["priority"] != lo_p)
        solo = next((a[0] for a in alone if a[0]["priority"] == lo_p), alone[0][0])
        flows = [{"bytes": r["bytes"], "t_start": r["t_start"], "priority": r["priority"]} for r in g]
        ends = simulate_flows(flows, capacity, low_share)
        p_low = ends[g.index(low)] - low["t_start"]
        p_high = ends[g.index(high)] - high["t_start"]
        p_solo = simulate_flows([{"bytes": solo["bytes"], "t_start": 0.0, "priority": lo_p}], capacity, low_share)[0]
        m_slow = low["elapsed_s"] / solo["elapsed_s"]
        p_slow = p_low / p_solo
        out.append({
            "group": low["group"], "capacity_Bps": capacity, "low_share": low_share,
            "low_alone_measured_s": solo["elapsed_s"], "low_alone_predicted_s": p_solo,
            "low_mixed_measured_s": low["elapsed_s"], "low_mixed_predicted_s": p_low,
            "high_measured_s": high["elapsed_s"], "high_predicted_s": p_high,
            "slowdown_measured": m_slow, "slowdown_predicted": p_slow,
            "slowdown_rel_err": (p_slow - m_slow) / m_slow,
        })
    return {"runs": out, "max_abs_slowdown_err": max(abs(r["slowdown_rel_err"]) for r in out)}


def perftest_compare(path: str, samples: list[dict]) -> str:
    """Our transport bandwidth as a fraction of perftest's BW_average (``--out_json``) per size."""
    import json

    with open(path) as fh:
        data = json.load(fh)
    results = data.get("results", data if isinstance(data, list) else [data])
    unit = 1e9 / 8 if "gbit" in json.dumps(data).lower() else 2**20  # --report_gbits or MiB/s
    ours = defaultdict(list)
    for r in samples:
        if r.get("kind") == "transport" and "elapsed_s" in r:
            ours[r["size"]].append(r["bytes"] / r["elapsed_s"])
    lines = ["perftest comparison (ours / perftest BW_average):"]
    for res in results:
        size = int(res.get("MsgSize", 0))
        ref = float(res.get("BW_average", 0)) * unit
        if size in ours and ref > 0:
            lines.append(f"  {size} B: ours {np.median(ours[size]) / 1e6:.1f} MB/s, perftest {ref / 1e6:.1f} MB/s, "
                         f"ratio {np.median(ours[size]) / ref:.3f}")
    return "\n".join(lines)
