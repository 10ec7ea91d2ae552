"""The fluid rate solver: weighted two-class max-min fair rates of flows on links. Pure functions of
a closed set of links and flows (no time, no events); `dpsim.kernel.resources.net.Network` decides when to call it.

What this model is (docs/modeling.md, "network")
  - within a traffic class, flows crossing a link share it equally (max-min, progressive filling);
  - between the HIGH class (model collectives) and the LOW class (KV transfers, H2D/D2H), each link is
    arbitrated like an InfiniBand virtual-lane arbiter: when both classes have demand the LOW class is
    guaranteed `low_class_share` of the link and HIGH may use the rest; whatever one class cannot use
    goes to the other (work conserving);
  - a flow may carry its own rate cap (`max_rate`), e.g. a collective paced by compute;
  - a HIGH flow crosses exactly one link (the simulator's all-to-all runs on one NIC direction).
    That is what makes the four-step fill below exact for the arbiter: with a HIGH flow on two or
    more links, HIGH's first pass can be limited on one link by a LOW guarantee that LOW cannot use
    there, while LOW takes its residual on another, and the fill would then be neither the arbiter
    nor work conserving. Such flows are refused (`MultiLinkHighFlow`), not solved approximately.

What it is not
  Not a congestion-control model: the rates are the fixed point TCP/IB flows converge to, reached at
  once (SimGrid's fluid model without its latency and TCP-window corrections).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from dpsim.kernel.resources.elements import TrafficClass  # noqa: F401  (re-exported: a flow's class)

try:  # Cython's pure-Python mode (dpsim.tools.compiled): cython.compiled is True only in the compiled build
    import cython

    COMPILED = bool(cython.compiled)
except ImportError:  # Cython not installed: pure Python
    COMPILED = False

_RATE_TOLERANCE = 1e-9
_INF = math.inf  # (compiled: a C double, fluid.pxd, where math.inf is a module attribute looked up each time)


class SolverLink(Protocol):
    """A link as the solver sees it: its capacity, and the scratch state the solver keeps on it while
    it solves (`dpsim.kernel.resources.elements.Link` is one; its .pxd declares the same fields for the
    compiled build). This module does not import the network, so the import graph runs net -> fluid."""

    name: str
    index: int
    capacity: float
    avail: float
    unfixed: int
    members: list
    n_members: int
    key: float


class SolverFlow(Protocol):
    """A flow as the solver sees it (`dpsim.kernel.resources.elements.Flow` is one)."""

    path: Any
    traffic_class: Any
    max_rate: Any
    tag: Any
    seq: int
    solved: float
    fixed: bool
    high: bool  # traffic_class is TrafficClass.HIGH


FlowT = TypeVar("FlowT", bound=SolverFlow)  # the caller's flow type, handed back as the rates' keys


class MultiLinkHighFlow(ValueError):
    """A HIGH-class flow whose path is not exactly one link (see the module notes)."""


def check_high_path(path, tag: object = "") -> None:
    """Refuse a HIGH-class path of other than one link, naming the flow and its links."""
    if len(path) != 1:
        names = ", ".join(getattr(link, "name", str(link)) for link in path) or "no links"
        raise MultiLinkHighFlow(f"HIGH-class flow {tag!s}: path ({names}) must be exactly one link; the two-class "
                                f"arbiter is exact only for single-link HIGH flows (docs/modeling.md, network)")


def solve_rates(links: Sequence[SolverLink], flows: Sequence[FlowT], low_class_share: float) -> dict[FlowT, float]:
    """Weighted two-class max-min fair rates for `flows` on `links` (a closed component).

    HIGH is filled first on each link's capacity minus the LOW guarantee (reserved only on links where
    LOW has flows); LOW is then filled on what HIGH left; HIGH is refilled on what LOW actually uses,
    so a guarantee LOW cannot use (bottlenecked elsewhere) goes back to HIGH; LOW takes any rest.
    """
    return solve_two_class(links, flows, low_class_share)[0]


def solve_two_class(links: Sequence[SolverLink], flows: Sequence[FlowT], low_class_share: float,
                    free_links: Sequence[SolverLink] = ()) -> tuple[dict[FlowT, float], bool]:
    """`solve_rates`, and whether the refill ran (some HIGH flow was limited by a link, not its cap).
    Raises `MultiLinkHighFlow` for a HIGH flow whose path is not one link.

    `free_links`: links on the flows' paths that are left out as constraints (the caller has checked
    that they have room: `dpsim.kernel.resources.net.Network._binding_boundary`)."""
    refilled = solve_in_place(links, flows, low_class_share, free_links)
    return _solved(flows), refilled


def solve_in_place(links: Sequence[SolverLink], flows: Sequence[SolverFlow], low_class_share: float,
                   free_links: Sequence[SolverLink] = ()) -> bool:
    """`solve_two_class` that leaves each flow's rate in its `solved` field instead of returning a
    dict (the network reads them there: no dict per re-rate); returns whether the refill ran."""
    if len(flows) == 1:  # alone: whatever class, the tightest link or its own cap
        flow = flows[0]
        if flow.high and len(flow.path) != 1:
            check_high_path(flow.path, flow.tag)
        rate = _INF
        for link in flow.path:
            if link.capacity < rate:
                rate = link.capacity
        flow.solved = rate if flow.max_rate is None else min(rate, flow.max_rate)
        return False
    high: list[SolverFlow] = []
    low: list[SolverFlow] = []
    for flow in flows:  # loops, not comprehensions, here and below: the compiled build types them
        if flow.high:
            if len(flow.path) != 1:
                check_high_path(flow.path, flow.tag)
            high.append(flow)
        else:
            low.append(flow)
    for link in links:
        link.avail = link.capacity
    if not high or not low:
        _fill(links, flows, free_links)
        return False
    for f in low:  # the LOW guarantee is reserved only on links where LOW has flows
        for link in f.path:
            link.avail = link.capacity - link.capacity * low_class_share
    high_order = _fill(links, high, free_links)
    _set_residual(links, high_order)
    low_order = _fill(links, low, free_links)
    if _all_at_own_cap(high):
        # Every HIGH flow runs at its own cap: more room changes nothing, so both refills below
        # would return the same rates.
        return False
    # Some HIGH flow is link-limited: give it back the guarantee LOW could not use, then let LOW
    # take what is left.
    _set_residual(links, low_order)
    high_order = _fill(links, high, free_links)
    _set_residual(links, high_order)
    _fill(links, low, free_links)
    return True


def _solved(flows: Sequence[FlowT]) -> dict[FlowT, float]:
    rates = {}
    for flow in flows:
        rates[flow] = flow.solved
    return rates


def _all_at_own_cap(flows: Sequence[SolverFlow]) -> bool:
    for f in flows:
        if f.max_rate is None or f.solved < f.max_rate * (1 - _RATE_TOLERANCE):
            return False
    return True


def _set_residual(links: Sequence[SolverLink], fixed: list[SolverFlow]) -> None:
    """Set each link's `avail` to its capacity minus the rates of `fixed` (in fixing order), floored at 0."""
    for link in links:
        link.avail = link.capacity
    for flow in fixed:
        rate = flow.solved
        for link in flow.path:
            link.avail -= rate
    for link in links:
        link.avail = max(link.avail, 0.0)


def _max_min(flows: Sequence[SolverFlow], capacity: dict[SolverLink, float]) -> dict[SolverFlow, float]:
    """Max-min fair rates of `flows` on links of the given capacities (see `_fill`)."""
    links = list(capacity)
    for link in links:
        link.avail = capacity[link]
    _fill(links, flows, ())
    return _solved(flows)


def _fill(links: Sequence[SolverLink], flows: Sequence[SolverFlow], free_links: Sequence[SolverLink]) -> list[SolverFlow]:
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
    for link in links:  # each link's list of members is reused (`Link.n_members`): no list per link and solve
        link.unfixed = 0
        link.n_members = 0
    for link in free_links:  # counted below like the others, but never enter the heap
        link.unfixed = 0
        link.n_members = 0
        link.avail = link.capacity
    for flow in flows:
        flow.fixed = False
        for link in flow.path:
            link.unfixed += 1
            members = link.members
            if link.n_members < len(members):
                members[link.n_members] = flow
            else:
                members.append(flow)
            link.n_members += 1
    # The heap orders links by (fair share, index). Compiled, it holds the links themselves, keyed by
    # `link.key`, with the typed sift below; pure Python, (share, index, link) tuples with heapq (its C
    # code beats a heap written in Python). Indices are unique, so every heap pops the same link.
    heap: list[Any]
    if COMPILED:
        heap = []
        for link in links:
            if link.unfixed:
                link.key = link.avail / link.unfixed
                heap.append(link)
        for i in range(len(heap) // 2 - 1, -1, -1):
            _sift_down(heap, i)
    else:
        heap = [(link.avail / link.unfixed, link.index, link) for link in links if link.unfixed]
        heapq.heapify(heap)
    # The capped flows by (cap, seq); the position in `flows` breaks ties as a stable sort would,
    # so flows themselves are never compared.
    capped: list[tuple[Any, int, int, SolverFlow]] = []
    for flow in flows:
        if flow.max_rate is not None:
            capped.append((flow.max_rate, flow.seq, len(capped), flow))
    if len(capped) > 1:
        capped.sort()
    n_capped = len(capped)
    next_cap = 0
    order: list[SolverFlow] = []
    total = len(flows)

    while len(order) < total:
        link_share, link = _INF, None
        while heap:
            if COMPILED:
                candidate = heap[0]
                share = candidate.key
            else:
                share, _, candidate = heap[0]
            n = candidate.unfixed
            if not n:
                _heap_pop(heap)
                continue
            actual = max(candidate.avail, 0.0) / n
            if actual > share * (1 + _RATE_TOLERANCE) + 1e-12:
                if COMPILED:
                    candidate.key = actual  # the root's key grows: sift it down (heapq.heapreplace)
                    _sift_down(heap, 0)
                else:
                    heapq.heapreplace(heap, (actual, candidate.index, candidate))
                continue
            link_share, link = actual, candidate
            break
        while next_cap < n_capped and capped[next_cap][3].fixed:
            next_cap += 1
        if next_cap < n_capped and capped[next_cap][0] <= link_share:
            limited, count, share = (capped[next_cap][3],), 1, capped[next_cap][0]
            next_cap += 1
        else:
            _heap_pop(heap)
            limited, count, share = link.members, link.n_members, link_share  # type: ignore[assignment]
        for k in range(count):
            flow = limited[k]
            if flow.fixed:
                continue
            flow.fixed = True
            flow.solved = share
            order.append(flow)
            for on in flow.path:
                on.avail -= share
                on.unfixed -= 1
    return order


def _heap_pop(heap: list) -> None:
    """Remove the heap's first link (`_fill`'s heap, either form)."""
    if not COMPILED:
        heapq.heappop(heap)
        return
    last = heap.pop()
    if heap:
        heap[0] = last
        _sift_down(heap, 0)


def _sift_down(heap: list, pos: int) -> None:
    """Move the link at `pos` down to its place in the compiled form of `_fill`'s heap: links
    ordered by (`key`, `index`), as heapq orders the (share, index, link) tuples of the pure form."""
    n = len(heap)
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        right = child + 1
        if right < n and _before(heap[right], heap[child]):
            child = right
        if not _before(heap[child], item):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


def _before(a: SolverLink, b: SolverLink) -> bool:
    return a.key < b.key or (a.key == b.key and a.index < b.index)
