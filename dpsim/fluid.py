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
    return solve_two_class(links, flows, low_class_share)[0]


def solve_two_class(links: Sequence[Link], flows: Sequence[Flow], low_class_share: float,
                    free_links: Sequence[Link] = ()) -> tuple[dict[Flow, float], bool]:
    """`solve_rates`, and whether the refill ran (some HIGH flow was limited by a link, not its cap).

    `free_links`: links on the flows' paths that are left out as constraints (the caller has checked
    that they have room: `dpsim.net.Network._split_holds`)."""
    if len(flows) == 1:  # alone: whatever class, the tightest link or its own cap
        flow = flows[0]
        rate = min([link.capacity for link in flow.path])
        return {flow: rate if flow.max_rate is None else min(rate, flow.max_rate)}, False
    high: list[Flow] = []
    low: list[Flow] = []
    high_class = TrafficClass.HIGH
    for flow in flows:  # loops, not comprehensions, here and below: the compiled build types them
        (high if flow.traffic_class == high_class else low).append(flow)
    for link in links:
        link.avail = link.capacity
    if not high or not low:
        _fill(links, flows, free_links)
        return _solved(flows), False
    for f in low:  # the LOW guarantee is reserved only on links where LOW has flows
        for link in f.path:
            link.avail = link.capacity - link.capacity * low_class_share
    high_order = _fill(links, high, free_links)
    _set_residual(links, high_order)
    low_order = _fill(links, low, free_links)
    if _all_at_own_cap(high):
        # Every HIGH flow runs at its own cap: more room changes nothing, so both refills below
        # would return the same rates.
        return _solved(flows), False
    # Some HIGH flow is link-limited: give it back the guarantee LOW could not use, then let LOW
    # take what is left.
    _set_residual(links, low_order)
    high_order = _fill(links, high, free_links)
    _set_residual(links, high_order)
    _fill(links, low, free_links)
    return _solved(flows), True


def _solved(flows: Sequence[Flow]) -> dict[Flow, float]:
    rates = {}
    for flow in flows:
        rates[flow] = flow.solved
    return rates


def _all_at_own_cap(flows: list[Flow]) -> bool:
    for f in flows:
        if f.max_rate is None or f.solved < f.max_rate * (1 - _RATE_TOLERANCE):
            return False
    return True


def _set_residual(links: Sequence[Link], fixed: list[Flow]) -> None:
    """Set each link's `avail` to its capacity minus the rates of `fixed` (in fixing order), floored at 0."""
    for link in links:
        link.avail = link.capacity
    for flow in fixed:
        rate = flow.solved
        for link in flow.path:
            link.avail -= rate
    for link in links:
        link.avail = max(link.avail, 0.0)


def _max_min(flows: Sequence[Flow], capacity: dict[Link, float]) -> dict[Flow, float]:
    """Max-min fair rates of `flows` on links of the given capacities (see `_fill`)."""
    links = list(capacity)
    for link in links:
        link.avail = capacity[link]
    _fill(links, flows, ())
    return _solved(flows)


def _fill(links: Sequence[Link], flows: Sequence[Flow], free_links: Sequence[Link]) -> list[Flow]:
    """Max-min fair rates by progressive filling, honouring per-flow caps, on each link's `avail`
    bytes/s (consumed); `free_links` (also on the paths) constrain nothing. Sets every flow's `solved`
    rate; returns the flows in the order they were fixed.

    Repeatedly take the tightest constraint (the link with the smallest fair share of its remaining
    capacity, or the smallest per-flow cap) and fix the flows it limits at that share. Fixing a flow
    at the smallest share can only raise the fair share of the other links it crosses, so the links
    sit in a lazy min-heap: a popped entry whose share has grown is pushed back with its new value.
    The working state lives on the links and flows themselves (no per-solve dicts: this is the
    simulator's innermost loop).
    """
    for link in links:
        link.unfixed = 0
        link.members = []
    for link in free_links:  # counted below like the others, but never enter the heap
        link.unfixed = 0
        link.members = []
        link.avail = link.capacity
    for flow in flows:
        flow.fixed = False
        for link in flow.path:
            link.unfixed += 1
            link.members.append(flow)
    heap = [(link.avail / link.unfixed, link.index, link) for link in links if link.unfixed]
    heapq.heapify(heap)
    capped = sorted([f for f in flows if f.max_rate is not None], key=_cap_order)
    next_cap = 0
    order: list[Flow] = []
    total = len(flows)

    while len(order) < total:
        link_share, link = math.inf, None
        while heap:
            share, _, candidate = heap[0]
            n = candidate.unfixed
            if not n:
                heapq.heappop(heap)
                continue
            actual = max(candidate.avail, 0.0) / n
            if actual > share * (1 + _RATE_TOLERANCE) + 1e-12:
                heapq.heapreplace(heap, (actual, candidate.index, candidate))
                continue
            link_share, link = actual, candidate
            break
        while next_cap < len(capped) and capped[next_cap].fixed:
            next_cap += 1
        if next_cap < len(capped) and capped[next_cap].max_rate <= link_share:
            limited, share = (capped[next_cap],), capped[next_cap].max_rate
            next_cap += 1
        else:
            heapq.heappop(heap)
            limited, share = link.members, link_share
        for flow in limited:
            if flow.fixed:
                continue
            flow.fixed = True
            flow.solved = share
            order.append(flow)
            for on in flow.path:
                on.avail -= share
                on.unfixed -= 1
    return order


def _cap_order(flow: Flow) -> tuple[float, int]:
    return flow.max_rate, flow.seq
