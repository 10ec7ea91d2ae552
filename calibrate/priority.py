"""The priority closure: flows of the two traffic classes (htb classes on the test bed's compute
link, virtual lanes on a cluster) on one link of dpsim's fluid network whose capacity is the link's
goodput, against the measured slowdown of the low-priority (KV) flow (paper §4: KV traffic yields to
the collectives' traffic on the compute network)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .errors import CalibrateError, Unavailable


def _net():
    try:
        import simpy

        from dpsim.kernel.resources.net import Network, TrafficClass
    except ImportError as e:
        raise Unavailable(f"dpsim.kernel.resources.net is not importable: {e}") from None
    return simpy, Network, TrafficClass


def after_buckets(flows: list[dict], is_high: list[bool], bucket_bytes: int) -> list[float]:
    """Bytes of each flow left for the link's rate under the htb tree's token buckets (measured on
    the test bed, docs/calibration.md#the-token-bucket): the flows that start first take the link's
    bucket at once, high class first; a high flow that starts later, beside a running low one,
    sends its own class's bucket at once and the low flow pays it back (it waits for the parent
    class's tokens). Without a bucket, each flow's bytes."""
    left = [float(f["bytes"]) for f in flows]
    if not bucket_bytes or not flows:
        return left
    first = min(f["t_start"] for f in flows)
    pool = float(bucket_bytes)
    for i in sorted(range(len(flows)), key=lambda i: (flows[i]["t_start"], not is_high[i])):
        if flows[i]["t_start"] == first:
            free = min(pool, left[i])
            pool -= free
        elif is_high[i]:
            free = min(float(bucket_bytes), left[i])
            running_low = [j for j in range(len(flows)) if not is_high[j] and flows[j]["t_start"] < flows[i]["t_start"]]
            if running_low:
                left[running_low[0]] += free
        else:
            free = 0.0
        left[i] -= free
    return left


def simulate_flows(flows: list[dict], capacity: float, low_share: float, classes: dict | None = None,
                   bucket_bytes: int = 0) -> list[float]:
    """Predicted end times of flows [{bytes, t_start, priority}] sharing one link. ``classes`` maps
    each priority to "high" or "low"; by default the lowest SO_PRIORITY value (the lowest htb minor
    id, class 1:10) is high and the others low. Flows of one class share fairly. ``bucket_bytes``:
    the shaper's token bucket (``after_buckets``)."""
    simpy, Network, TrafficClass = _net()
    env = simpy.Environment()
    net = Network(env, low_class_share=low_share)
    link = net.add_link("compute", capacity)
    prios = sorted({f["priority"] for f in flows if f["priority"] is not None})
    classes = classes or {p: ("high" if p == prios[0] and len(prios) > 1 else "low") for p in prios}
    is_high = [classes.get(f["priority"]) == "high" for f in flows]
    left = after_buckets(flows, is_high, bucket_bytes)
    ends = [0.0] * len(flows)

    def run(i, f):
        yield env.timeout(f["t_start"])
        if left[i] > 0:
            yield net.transfer([link], left[i], TrafficClass.HIGH if is_high[i] else TrafficClass.LOW)
        ends[i] = env.now

    for i, f in enumerate(flows):
        env.process(run(i, f))
    env.run()
    return ends


def priority_closure(samples: list[dict], capacity: float, low_share: float = 0.01, bucket_bytes: int = 0) -> dict:
    """Measured versus predicted slowdown of the low-priority flow beside a high-priority one, on a
    link with a token bucket of ``bucket_bytes`` (0: none)."""
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
        solos = [a[0] for a in alone if a[0]["priority"] == lo_p and a[0]["bytes"] == low["bytes"]] or \
            [a[0] for a in alone]
        solo_s = float(np.median([r["elapsed_s"] for r in solos]))  # repeated runs alone: their median
        flows = [{"bytes": r["bytes"], "t_start": r["t_start"], "priority": r["priority"]} for r in g]
        ends = simulate_flows(flows, capacity, low_share, bucket_bytes=bucket_bytes)
        p_low = ends[g.index(low)] - low["t_start"]
        p_high = ends[g.index(high)] - high["t_start"]
        p_solo = simulate_flows([{"bytes": low["bytes"], "t_start": 0.0, "priority": lo_p}], capacity, low_share,
                                bucket_bytes=bucket_bytes)[0]
        m_slow = low["elapsed_s"] / solo_s
        p_slow = p_low / p_solo
        out.append({
            "group": low["group"], "capacity_Bps": capacity, "low_share": low_share, "bucket_bytes": bucket_bytes,
            "low_alone_measured_s": solo_s, "low_alone_runs": len(solos), "low_alone_predicted_s": p_solo,
            "low_mixed_measured_s": low["elapsed_s"], "low_mixed_predicted_s": p_low,
            "high_measured_s": high["elapsed_s"], "high_predicted_s": p_high,
            "slowdown_measured": m_slow, "slowdown_predicted": p_slow,
            "slowdown_rel_err": (p_slow - m_slow) / m_slow,
        })
    return {"runs": out, "max_abs_slowdown_err": max(abs(r["slowdown_rel_err"]) for r in out)}
