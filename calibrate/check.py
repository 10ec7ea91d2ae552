"""Closure: predict each measured experiment with dpsim's own hardware model, loaded from the profile
exactly as ``include:`` gives it to a scenario, and compare per experiment (never summed, so errors
of opposite sign cannot cancel). The gate is the worst experiment.

The hardware is :class:`dpsim.kernel.resources.hardware.Cluster` built from a one-prefill-node, one-decode-node
scenario: each node's storage read link runs at dpsim's storage service rate
(:func:`dpsim.kernel.resources.hardware.storage_client_rate`: line rate x read_efficiency, io_overhead and
queue_depth), storage reads go over ``storage_read_path`` (storage NIC and host DRAM), a DE-path
block goes over ``remote_dram_to_gpu_path`` (decode DRAM, decode compute NIC tx, prefill compute NIC
rx) and pays ``compute_nic.latency``; ``storage.request_latency`` is paid once per request, as in
the simulator's storage read.

The workload is the loader experiment itself, request by request (same requests, same path, same
number in flight per path), block by block as the loader moves them: on the PE path each Full Block
is read then copied to the target (the profile's host-copy fit: the loader's copy is a memcpy, not
the GPU loopback dpsim models for an H2D); on the DE path the decode agent forwards each block while
it reads the next, out of the agent's pool of buffers.

Where the measured links had a token bucket (the test bed's shapers; the profile's
``calibration.links.NAME.bucket_bytes``, never a hardware key: real NICs have none), a transfer
that starts on an idle link sends what the bucket holds at once and the rest at the rate, and the
bucket refills at the rate while the link is idle (docs/calibration.md#the-token-bucket).

Link sweeps (depth 1, one message at a time) are experiments too: per size, the median measured
time against dpsim's time for one message on that link, so a profile whose compute or storage rate
is wrong fails the gate even where the loader experiment does not load that link.

Beside each loader prediction the check reports the naive estimate (each path's bytes over its
bottleneck bandwidth, the slower path ending the run) to show what the model adds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .bucket import TokenBucket, profile_buckets, records_bucket
from .errors import CalibrateError, Unavailable
from .profile import load_profile

DE_BUFFERS = 3  # the decode agent's Full Block buffers per worker (calibrate.decode_agent.DE_BUFFERS)
STORAGE_LINKS = ("storage", "storage_pe", "storage_de")


def _dpsim():
    try:
        import simpy

        from dpsim.kernel.resources.hardware import Cluster, storage_client_rate
        from dpsim.kernel.resources.net import TrafficClass
        from dpsim.scenario.config import ScenarioError, validate_scenario
    except ImportError as e:
        raise Unavailable(f"dpsim is not importable: {e}") from None
    return simpy, validate_scenario, ScenarioError, Cluster, storage_client_rate, TrafficClass


def profile_scenario(profile: dict, source: str = "<profile>"):
    """The profile's hardware as a dpsim scenario (1 prefill node, 1 decode node, 1 GPU each), validated
    by dpsim itself, so a bad value is one located error naming `source` (the profile's file) and the field."""
    _, validate_scenario, ScenarioError, *_ = _dpsim()
    hw = profile.get("hardware") or {}
    if not isinstance(hw, dict):
        raise CalibrateError(f"{source}: hardware = {hw!r}: expected a mapping of hardware sections")
    data = {"cluster": {"prefill_nodes": 1, "decode_nodes": 1, "gpus_per_node": 1}, "model": {"name": "ds27b"},
            "hardware": hw, "calibration": profile.get("calibration")}
    try:
        scenario = validate_scenario(data, default_source=source)
    except ScenarioError as e:
        raise CalibrateError(f"dpsim rejects the profile: {e}") from None
    for key in ("storage_nic", "compute_nic"):
        if "bandwidth" not in (hw.get(key) or {}):
            raise CalibrateError(f"{source}: no hardware.{key}.bandwidth: the closure cannot predict that link")
    return scenario


def host_copy(profile: dict, source: str = "<profile>") -> tuple[float, float | None]:
    """(latency s, bandwidth B/s) of the PE path's local copy: the profile's host-copy fit, else its
    GPU H2D fit; (0, None) = free (the profile measured neither; dpsim itself has no memcpy cost).
    A fit whose numbers are not finite and non-negative is one located CalibrateError."""
    calibration = profile.get("calibration")
    links = calibration.get("links") if isinstance(calibration, dict) else None
    if not isinstance(links, dict):
        return 0.0, None
    for name in ("host_copy", "h2d"):
        link = links.get(name)
        if not isinstance(link, dict) or not link.get("bandwidth_Bps"):
            continue
        latency_s, bandwidth = link.get("latency_s", 0.0) or 0.0, link["bandwidth_Bps"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                   for v in (latency_s, bandwidth)) or bandwidth <= 0:
            raise CalibrateError(f"{source}: calibration.links.{name}: latency_s and bandwidth_Bps must be finite "
                                 f"numbers (bandwidth > 0), got {latency_s!r} and {bandwidth!r}")
        return float(latency_s), float(bandwidth)
    return 0.0, None


def simulate_loader(cfg: dict, requests: list[dict], scenario, copy: tuple[float, float | None],
                    buckets: dict[str, int] | None = None) -> dict[int, tuple[float, float]]:
    """Predicted (t_submit, t_done) per request id of one loader experiment, on dpsim's Cluster.
    ``buckets``: the measured links' token buckets by link name (``bucket.profile_buckets``)."""
    simpy, _, _, Cluster, _, TrafficClass = _dpsim()
    env = simpy.Environment()
    block, nblk, depth = cfg["block_size"], cfg["blocks_per_request"], cfg["depth"]
    cluster = Cluster(env, scenario, block_bytes=block)
    net, pe, de = cluster.net, cluster.prefill_nodes[0], cluster.decode_nodes[0]
    forward_path = cluster.remote_dram_to_gpu_path(de, 0, pe, 0)
    copy_s = copy[0] + (block / copy[1] if copy[1] else 0.0)
    queues: dict[str, list[int]] = {"pe": [], "de": []}
    for r in sorted(requests, key=lambda r: r["request"]):
        queues[r["path"]].append(r["request"])
    out: dict[int, tuple[float, float]] = {}
    hw, buckets = scenario.hardware, buckets or {}
    storage_bw = hw.storage_nic.count * hw.storage_nic.bandwidth * hw.storage.read_efficiency
    shaper: dict[str, TokenBucket] = {}  # "pe"/"de": that host's storage link; "compute"
    for key, names, rate in (("pe", ("storage_pe", "storage"), storage_bw),
                             ("de", ("storage_de", "storage"), storage_bw),
                             ("compute", ("compute",), hw.compute_nic.bandwidth)):
        size = next((buckets[n] for n in names if buckets.get(n)), 0)
        if size:
            shaper[key] = TokenBucket(env, size, rate)

    def shaped(key: str, path, tag: str):
        bucket = shaper.get(key)
        rest = bucket.take(block) if bucket else block
        if rest > 0:
            yield net.transfer(path, rest, TrafficClass.LOW, tag=tag)
        if bucket:
            bucket.release()

    def read(node):
        return env.process(shaped("pe" if node is pe else "de", cluster.storage_read_path(node), "storage_read"))

    def pe_worker():
        while queues["pe"]:
            i = queues["pe"].pop(0)
            t0 = env.now
            yield env.timeout(cluster.request_latency_s)
            for _ in range(nblk):
                yield read(pe)
                yield env.timeout(copy_s)
            out[i] = (t0, env.now)

    def de_worker():
        free, to_send = simpy.Store(env), simpy.Store(env)
        for b in range(DE_BUFFERS):
            free.put(b)

        def forwarder():
            while True:
                b, last = yield to_send.get()
                yield env.process(shaped("compute", forward_path, "kv_de_to_pe"))
                yield env.timeout(cluster.nic_latency_s)  # completion of the last write
                yield free.put(b)
                if last is not None:
                    last.succeed()

        env.process(forwarder())
        while queues["de"]:
            i = queues["de"].pop(0)
            t0 = env.now
            done = env.event()
            yield env.timeout(cluster.request_latency_s)
            for j in range(nblk):
                b = yield free.get()
                yield read(de)
                yield to_send.put((b, done if j == nblk - 1 else None))
            yield done
            yield env.timeout(cluster.nic_latency_s)  # the completion notice to the prefill host
            out[i] = (t0, env.now)

    for path, worker in (("pe", pe_worker), ("de", de_worker)):
        for _ in range(depth if queues[path] else 0):
            env.process(worker())
    env.run()
    return out


def naive_makespan(cfg: dict, requests: list[dict], scenario) -> float:
    """Bytes over bandwidth: each path's bytes over its bottleneck rate, the slower path ending."""
    hw = scenario.hardware
    storage = hw.storage_nic.count * hw.storage_nic.bandwidth * hw.storage.read_efficiency
    rates = {"pe": storage, "de": min(storage, hw.compute_nic.bandwidth)}
    return max(sum(r["bytes"] for r in requests if r["path"] == p) / rates[p] for p in rates)


def message_time(link: str, size: int, scenario, bucket_bytes: int = 0) -> float | None:
    """dpsim's time for one message of ``size`` bytes alone on a link (None: not a modelled link);
    on a link with a full token bucket of ``bucket_bytes`` those bytes cross at once."""
    _, _, _, _, storage_client_rate, _ = _dpsim()
    hw = scenario.hardware
    free = min(size, bucket_bytes)
    if link in STORAGE_LINKS:  # one read in flight: queue depth 1
        streaming = hw.storage_nic.count * hw.storage_nic.bandwidth * hw.storage.read_efficiency
        rate = storage_client_rate(hw.storage_nic.count * hw.storage_nic.bandwidth, hw.storage.read_efficiency,
                                   hw.storage.io_overhead, 1, size)
        return hw.storage.request_latency + size / rate - free / streaming
    if link == "compute":
        return hw.compute_nic.latency + (size - free) / hw.compute_nic.bandwidth
    return None


def naive_message_time(link: str, size: int, scenario) -> float:
    """Bytes over the link's bandwidth, no latency or per-read overhead."""
    hw = scenario.hardware
    if link in STORAGE_LINKS:
        return size / (hw.storage_nic.count * hw.storage_nic.bandwidth * hw.storage.read_efficiency)
    return size / hw.compute_nic.bandwidth


def _loader_experiments(samples: list[dict], scenario, copy, buckets: dict[str, int]) -> tuple[list[dict], list[dict]]:
    finished = {r["experiment"] for r in samples if r.get("kind") == "loader_total"}
    exps = {r["experiment"]: r for r in samples if r.get("kind") == "experiment" and r.get("what") == "loader"
            and r["experiment"] in finished}  # an interrupted run has no total: its requests are partial
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in samples:
        if r.get("kind") == "loader":
            by_exp[r["experiment"]].append(r)
    rows, per_config = [], defaultdict(list)
    for eid, exp in exps.items():
        reqs, cfg = by_exp.get(eid, []), exp["config"]
        if not reqs:
            continue
        pred = simulate_loader(cfg, reqs, scenario, copy, buckets)
        m_end, p_end = max(r["t_done"] for r in reqs), max(t for _, t in pred.values())
        naive = naive_makespan(cfg, reqs, scenario)
        for r in reqs:
            per_config[(cfg["block_size"], cfg["depth"], cfg["paths"], r["path"])].append(
                (r["t_done"], pred[r["request"]][1]))
        nbytes = sum(r["bytes"] for r in reqs)
        rows.append({"kind": "loader", "experiment": eid, "what": f"loader {cfg['paths']} depth {cfg['depth']}",
                     "block_size": cfg["block_size"], "depth": cfg["depth"], "paths": cfg["paths"],
                     "requests": len(reqs), "measured_s": m_end, "predicted_s": p_end, "rel_err": (p_end - m_end) / m_end,
                     "naive_s": naive, "naive_rel_err": (naive - m_end) / m_end,
                     "measured_bw": nbytes / m_end, "predicted_bw": nbytes / p_end})
    table = []
    for (bs, depth, paths, path), v in sorted(per_config.items()):
        m, p = np.array([x[0] for x in v]), np.array([x[1] for x in v])
        table.append({"block_size": bs, "depth": depth, "paths": paths, "path": path, "requests": len(v),
                      "measured_mean_completion_s": float(m.mean()), "predicted_mean_completion_s": float(p.mean()),
                      "mean_rel_err": float(((p - m) / m).mean()), "max_abs_rel_err": float(np.abs((p - m) / m).max()),
                      "mean_abs_rel_err": float(np.abs((p - m) / m).mean())})
    return rows, table


def _link_experiments(samples: list[dict], scenario) -> list[dict]:
    groups: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    records: dict[str, list[dict]] = defaultdict(list)
    for r in samples:
        if (r.get("kind") in ("transport", "storage") and r.get("count", 1) == 1 and r.get("depth", 1) == 1
                and r.get("concurrency", 1) == 1 and "elapsed_s" in r):
            groups[str(r.get("link"))][int(r["size"])].append(float(r["elapsed_s"]))
            records[str(r.get("link"))].append(r)
    rows = []
    for link, by_size in sorted(groups.items()):
        sizes = sorted(by_size)
        if message_time(link, sizes[0], scenario) is None:
            continue
        bucket = records_bucket(records[link], f"sweep of link {link}")  # the samples say what they crossed
        m = np.array([np.median(by_size[s]) for s in sizes])
        p = np.array([message_time(link, s, scenario, bucket) for s in sizes])
        naive = np.array([naive_message_time(link, s, scenario) for s in sizes])
        rows.append({"kind": "link", "experiment": f"sweep {link}", "what": f"{link} sweep, {len(sizes)} sizes",
                     "measured_s": float(m.sum()), "predicted_s": float(p.sum()),
                     "rel_err": float((p.sum() - m.sum()) / m.sum()),
                     "naive_s": float(naive.sum()), "naive_rel_err": float((naive.sum() - m.sum()) / m.sum()),
                     "worst_size_rel_err": float(np.abs((p - m) / m).max())})
    return rows


def closure(profile_path: str, samples: list[dict]) -> dict:
    """Per-experiment comparison of measured and dpsim-predicted times (see the module docstring)."""
    profile = load_profile(profile_path)
    scenario = profile_scenario(profile, str(profile_path))
    copy = host_copy(profile, str(profile_path))
    loader_rows, table = _loader_experiments(samples, scenario, copy, profile_buckets(profile, str(profile_path)))
    if not loader_rows:
        raise CalibrateError("no finished loader experiment in the raw samples (run `dpsim-calibrate loader --raw ...`)")
    rows = loader_rows + _link_experiments(samples, scenario)
    worst = max(rows, key=lambda r: abs(r["rel_err"]))
    hw = scenario.hardware
    return {
        "profile": str(profile_path),
        "parameters_from": "dpsim scenario (dpsim.scenario.config + dpsim.kernel.resources.hardware)",
        "parameters": {"storage_bw": hw.storage_nic.count * hw.storage_nic.bandwidth * hw.storage.read_efficiency,
                       "io_overhead": hw.storage.io_overhead, "queue_depth": hw.storage.queue_depth,
                       "compute_bw": hw.compute_nic.bandwidth, "compute_latency": hw.compute_nic.latency,
                       "copy_latency_s": copy[0], "copy_bw": copy[1] or float("inf")},
        "experiments": rows,
        "per_config": table,
        "worst_experiment": worst["experiment"],
        "worst_experiment_rel_err": worst["rel_err"],
        "max_config_rel_err": max(abs(t["mean_rel_err"]) for t in table),
        "mean_abs_rel_err": float(np.mean([t["mean_abs_rel_err"] for t in table])),
        "naive_worst_rel_err": max((r["naive_rel_err"] for r in loader_rows), key=abs),
        "model_worst_loader_rel_err": max((r["rel_err"] for r in loader_rows), key=abs),
    }


@dataclass(frozen=True)
class Gate:
    name: str
    value: float  # the signed relative error that decided it
    limit: float
    where: str

    @property
    def passed(self) -> bool:
        return abs(self.value) <= self.limit

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict}: {self.name}: {self.value * 100:+.2f} % ({self.where}); limit +-{self.limit * 100:.1f} %"


def closure_gates(res: dict, tolerance: float) -> list[Gate]:
    """The worst experiment (loader runs and link sweeps, each on its own) and the worst path's mean
    request-completion error."""
    worst_cfg = max(res["per_config"], key=lambda t: abs(t["mean_rel_err"]))
    return [
        Gate("worst experiment", res["worst_experiment_rel_err"], tolerance, res["worst_experiment"]),
        Gate("worst path mean completion", worst_cfg["mean_rel_err"], tolerance,
             f"depth {worst_cfg['depth']} {worst_cfg['paths']}/{worst_cfg['path']}"),
    ]


def format_closure(res: dict) -> str:
    lines = [f"{'experiment':<36}{'what':<30}{'measured[s]':>12}{'predicted[s]':>13}{'err[%]':>8}{'naive err[%]':>13}"]
    for r in res["experiments"]:
        lines.append(f"{r['experiment']:<36}{r['what']:<30}{r['measured_s']:>12.4f}{r['predicted_s']:>13.4f}"
                     f"{r['rel_err'] * 100:>8.2f}{r['naive_rel_err'] * 100:>13.2f}")
    p = res["parameters"]
    lines.append(f"parameters from the {res['parameters_from']}: storage {p['storage_bw'] / 1e6:.3f} MB/s per node, "
                 f"io_overhead {p['io_overhead'] * 1e6:.1f} us, queue depth {p['queue_depth']}, compute "
                 f"{p['compute_bw'] / 1e6:.3f} MB/s, latency {p['compute_latency'] * 1e6:.1f} us")
    lines.append("per depth / path (request completion times):")
    for t in res["per_config"]:
        lines.append(f"  block {t['block_size']} B depth {t['depth']} {t['paths']}/{t['path']}: {t['requests']} requests, "
                     f"mean completion measured {t['measured_mean_completion_s']:.4f} s predicted "
                     f"{t['predicted_mean_completion_s']:.4f} s ({t['mean_rel_err'] * 100:+.2f} %), "
                     f"max |err| {t['max_abs_rel_err'] * 100:.2f} %")
    lines.append(f"worst loader experiment: dpsim {res['model_worst_loader_rel_err'] * 100:+.2f} %, naive bytes over "
                 f"bandwidth {res['naive_worst_rel_err'] * 100:+.2f} %; mean |error| per request "
                 f"{res['mean_abs_rel_err'] * 100:.2f} % (single requests also carry TCP's short-term unfairness "
                 "between streams, which a fluid model does not reproduce)")
    return "\n".join(lines)


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
