"""The fluid rate solver: weighted two-class max-min fair rates of flows on links. Pure functions of
a closed set of links and flows (no time, no events); `dpsim.net.Network` decides when to call it.

What this model is
  - within a traffic class, flows crossing a link share it equally (max-min, progressive filling);
  - between the HIGH class (model collectives) and the LOW class (KV transfers, H2D/D2H), each link is
    arbitrated like an InfiniBand virtual-lane arbiter: when both classes have demand the LOW class is
    guaranteed `low_class_share` of the link and HIGH may use the rest; whatever one class cannot use
    goes to the other (work conserving);
  - a flow may carry its own rate cap (`max_rate`), e.g. a collective paced by compute.

What it is not
  Not a congestion-control model: the rates are the fixed point TCP/IB flows converge to, reached at
  once (SimGrid's fluid model without its latency and TCP-window corrections).
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dpsim.net import Flow, Link

_RATE_TOLERANCE = 1e-9


class TrafficClass(enum.IntEnum):
    """Virtual-lane class of a flow."""

    HIGH = 0  # model-execution collectives
    LOW = 1  # KV cache transfers, H2D/D2H copies, storage I/O


def solve_rates(links: Sequence[Link], flows: Sequence[Flow], low_class_share: float) -> dict[Flow, float]:
    """Weighted two-class max-min fair rates for `flows` on `links` (a closed component).

    HIGH is filled first on each link's capacity minus the LOW guarantee (reserved only on links where
    LOW has flows); LOW is then filled on what HIGH left; HIGH is refilled on what LOW actually uses,
    so a guarantee LOW cannot use (bottlenecked elsewhere) goes back to HIGH; LOW takes any rest.
    """
    if len(flows) == 1:  # alone: whatever class, the tightest link or its own cap
        flow = flows[0]
        rate = min(link.capacity for link in flow.path)
        return {flow: rate if flow.max_rate is None else min(rate, flow.max_rate)}
    high = [f for f in flows if f.traffic_class == TrafficClass.HIGH]
    low = [f for f in flows if f.traffic_class == TrafficClass.LOW]
    capacity = {link: link.capacity for link in links}
    if not high or not low:
        return _max_min(flows, capacity)
    low_links = {link for f in low for link in f.path}
    reserve = {link: (link.capacity * low_class_share if link in low_links else 0.0) for link in links}
    high_rates = _max_min(high, {link: capacity[link] - reserve[link] for link in links})
    low_rates = _max_min(low, _residual(capacity, high_rates))
    if not all(f.max_rate is not None and high_rates[f] >= f.max_rate * (1 - _RATE_TOLERANCE) for f in high):
        # Some HIGH flow is link-limited: give it back the guarantee LOW could not use, then let LOW
        # take what is left. (When every HIGH flow already runs at its own cap, more room changes
        # nothing, so both refills would return the same rates.)
        high_rates = _max_min(high, _residual(capacity, low_rates))
        low_rates = _max_min(low, _residual(capacity, high_rates))
    high_rates.update(low_rates)
    return high_rates


def _residual(capacity: dict[Link, float], used: dict[Flow, float]) -> dict[Link, float]:
    residual = dict(capacity)
    for flow, rate in used.items():
        for link in flow.path:
            residual[link] -= rate
    return {link: max(value, 0.0) for link, value in residual.items()}


def _max_min(flows: Sequence[Flow], capacity: dict[Link, float]) -> dict[Flow, float]:
    """Max-min fair rates by progressive filling, honouring per-flow caps.

    Repeatedly take the tightest constraint (the link with the smallest fair share of its remaining
    capacity, or the smallest per-flow cap) and fix the flows it limits at that share. Fixing a flow
    at the smallest share can only raise the fair share of the other links it crosses, so the links
    sit in a lazy min-heap: a popped entry whose share has grown is pushed back with its new value.
    """
    rates: dict[Flow, float] = {}
    remaining = dict(capacity)
    unfixed = dict.fromkeys(capacity, 0)
    members: dict[Link, list[Flow]] = {link: [] for link in capacity}
    for flow in flows:
        for link in flow.path:
            unfixed[link] += 1
            members[link].append(flow)
    heap = [(remaining[link] / n, link.index, link) for link, n in unfixed.items() if n]
    heapq.heapify(heap)
    capped = sorted((f for f in flows if f.max_rate is not None), key=lambda f: (f.max_rate, f.seq))
    next_cap = 0

    while len(rates) < len(flows):
        link_share, link = math.inf, None
        while heap:
            share, _, candidate = heap[0]
            n = unfixed[candidate]
            if not n:
                heapq.heappop(heap)
                continue
            actual = max(remaining[candidate], 0.0) / n
            if actual > share * (1 + _RATE_TOLERANCE) + 1e-12:
                heapq.heapreplace(heap, (actual, candidate.index, candidate))
                continue
            link_share, link = actual, candidate
            break
        while next_cap < len(capped) and capped[next_cap] in rates:
            next_cap += 1
        if next_cap < len(capped) and capped[next_cap].max_rate <= link_share:
            limited, share = (capped[next_cap],), capped[next_cap].max_rate
            next_cap += 1
        else:
            heapq.heappop(heap)
            limited, share = members[link], link_share
        for flow in limited:
            if flow in rates:
                continue
            rates[flow] = share
            for on in flow.path:
                remaining[on] -= share
                unfixed[on] -= 1
    return rates
