"""A passive fluid network: links with capacities, flows over paths, two priority classes.

What this model is
  Every transfer is a *flow*: a number of bytes crossing a path (an ordered list of links). At any
  moment each flow has a rate: two-class weighted max-min fair, with per-flow caps, as computed by
  `dpsim.kernel.resources.fluid.solve_rates` (a pure function of links and flows, with its closed-form tests; it
  states the sharing rules). This module owns time: when to re-rate, bytes, completions, events.
  Rates change only when a flow starts or ends, and only for the connected component of links and
  flows that the starting or ending flow touches (SimGrid-style); the component stops at links with
  slack, since they cannot bind (a new flow counts at the most it can get: its tightest link or its
  cap), and a check after the solve widens it past any of them that would (the rates are the same
  to the bit). A flow that ends leaves its links; only
  those that bound some flow start a re-rate (a link with slack limits nobody, so its other flows
  keep their rates). All the starts and ends of one instant are rated together, once, after the
  other events of that instant (no bytes move meanwhile, since no time passes). Between those
  instants every rate is constant, so a flow's completion time is exact.

What it is not
  No packets, no congestion control, no latency per hop (add latency before starting a flow), no
  buffers. A NIC port is two links (tx, rx); sharing inside PCIe switches is not modelled beyond the
  links a scenario creates.

Time
  Simulation time is float seconds. A flow whose remaining bytes fall under a completion tolerance
  (`size * 1e-9` or 1e-3 byte) finishes, and completion instants closer than 1 ns are merged, so the
  clock never creeps in sub-nanosecond steps. The network reads the clock as SimPy's
  `Environment._now` (what its `now` property returns, and what dpsim.kernel.loop sets), without the
  property call: it reads it several times per flow.

The network is passive: actors call `transfer(...)` and wait on the returned SimPy event.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import simpy

from dpsim.kernel.resources.completions import CompletionQueue
from dpsim.kernel.resources.elements import Flow, Link
from dpsim.kernel.resources.fluid import TrafficClass, check_high_path, solve_in_place

try:  # Cython's pure-Python mode: cython.compiled is True only inside the compiled build (dpsim.tools.compiled)
    import cython

    COMPILED = bool(cython.compiled)
except ImportError:  # Cython not installed: pure Python
    COMPILED = False
if COMPILED:
    from dpsim.kernel.resources.build_state import check_fresh

    check_fresh()

_TIME_TOLERANCE_S = 1e-9
_INF = math.inf  # (compiled, these four are C doubles: net.pxd)
# SimPy runs events of one instant by priority (URGENT 0, NORMAL 1), then in scheduling order; the
# re-rate runs after all of them.
_END_OF_INSTANT = 2
_NORMAL = 1  # simpy.events.NORMAL, the priority of a Timeout
# A link further than this (relative) below its capacity, in either class's terms, does not join a
# component (see Network._component); after the solve it must still be this far below.
_SPLIT_SLACK = 1e-3
_SPLIT_MARGIN = 1e-9


class Network:
    """The set of links and the flows on them; computes rates and completion times."""

    def __init__(self, env: simpy.Environment, low_class_share: float = 0.01, bin_s: float = 1.0):
        if not 0.0 < low_class_share < 1.0:
            raise ValueError(f"low_class_share must be in (0, 1), got {low_class_share}")
        self.env = env
        self.low_class_share = low_class_share
        self.bin_s = bin_s
        self.links: list[Link] = []
        self._active = 0  # flows started and not finished
        self._seq = itertools.count()
        self._due = CompletionQueue()  # the flows' predicted finish times
        self._timer_at = math.inf
        self._timer: simpy.Event | None = None
        # Driven by dpsim.kernel.loop (`drive`): the pending wake-ups as the (time, priority, id) keys
        # SimPy would give their events, instead of events.
        self._driven = False
        self.timer_key: tuple[float, int, int] | None = None
        self.flush_key: tuple[float, int, int] | None = None
        self.bytes_by_tag: dict[str, float] = {}
        self.flows_started = 0
        self.flows_finished = 0
        self.recomputations = 0
        self.flows_solved = 0  # flows handed to the solver, summed over its solves (re-rates and their redos)
        self.violations: list[str] = []
        self._dirty: dict[Link, None] = {}  # links a finished flow left that bound some flow (ordered)
        self._joined: list[Flow] = []  # flows started since the last solve, in start order
        self._flush_pending = False
        self._stamp = 0
        self._mark = 0
        self._split_ok = True  # False once a solve needed the HIGH refill (see _recompute)
        self.split_solves = 0  # solves that stopped at links with slack (and were exact)
        self.split_fallbacks = 0  # solves redone because a boundary link would bind (widened past it; whole after a refill)
        self._skip_idle = True  # False: re-rate after every completion (for tests: the same run either way)
        self.skipped_solves = 0  # completions that needed no re-rate (every link they left had slack)
        self.skipped_links = 0
        self._unchecked: dict[Link, None] = {}  # links left by a finished flow, to check after the next re-rate
        self._stack: list[Link] = []  # _component's stack of links to visit (reused)

    # ----------------------------------------------------------------------------------- public API
    def add_link(self, name: str, capacity_bytes_per_s: float) -> Link:
        link = Link(name, capacity_bytes_per_s, len(self.links))
        self.links.append(link)
        return link

    def transfer(self, path: Sequence[Link], size_bytes: float, traffic_class: TrafficClass = TrafficClass.LOW,
                 max_rate: float | None = None, tag: str = "data", done: simpy.Event | None = None,
                 notify: bool = True) -> simpy.Event | None:
        """Start moving `size_bytes` over `path`; the returned event fires when the last byte arrives.
        A HIGH-class path must be one link (`dpsim.kernel.resources.fluid.MultiLinkHighFlow` otherwise).
        `done`: the event to succeed instead of a new one (a `dpsim.kernel.resources.countdown.Countdown` shared
        by several transfers);
        `notify=False`: no event at all (a transfer nobody waits for), and None is returned."""
        event = (simpy.Event(self.env) if done is None else done) if notify else None  # env.event() without its descriptor
        if not size_bytes >= 0:  # negative, or NaN
            raise ValueError(f"flow size must be >= 0 bytes, got {size_bytes}")
        if not path or size_bytes <= 0:
            # Zero bytes, or a free path (an oracle's zero-cost I/O): done now.
            self.bytes_by_tag[tag] = self.bytes_by_tag.get(tag, 0.0) + size_bytes
            if event is not None:
                event.succeed()
            return event
        if max_rate is not None and not max_rate > 0:
            raise ValueError(f"max_rate must be > 0, got {max_rate}")
        if type(traffic_class) is not TrafficClass:
            traffic_class = TrafficClass(traffic_class)
        if len(path) != 1:
            if traffic_class == TrafficClass.HIGH:
                check_high_path(path, tag)  # raises MultiLinkHighFlow: the arbiter is exact for one link only
            if _repeats_a_link(path):  # a link's flows are a list: a flow may be on it once
                raise ValueError(f"flow {tag}: its path crosses a link twice ({', '.join(on.name for on in path)})")
        self._start(Flow(tuple(path), float(size_bytes), traffic_class, max_rate, tag, event, next(self._seq),
                         self.env._now))
        return event

    def _start(self, flow: Flow) -> None:
        """Put a new flow on its links; it is rated with the others at the end of this instant."""
        self._active += 1
        self.flows_started += 1
        # The most the flow can get: its tightest link, or its cap. Its links count it in their slack
        # test until it is rated (`_has_slack`), so a link it cannot fill stays out of the solve.
        most = math.inf
        for link in flow.path:
            if link.capacity < most:
                most = link.capacity
        if flow.max_rate is not None and flow.max_rate < most:
            most = flow.max_rate
        high = flow.high
        for link in flow.path:
            link.flows.append(flow)
            if high:
                link.joining_high += most
            else:
                link.joining_low += most
        self._joined.append(flow)
        self._request_flush()

    def drive(self) -> None:
        """Leave this network's wake-ups (the next completion, the end-of-instant re-rate) to the run
        loop `dpsim.kernel.loop.run`, which runs them in SimPy's order without SimPy events. Call before
        the first transfer; a network that is not driven schedules SimPy events (`env.run` works)."""
        if self._active or self._flush_pending:
            raise RuntimeError("Network.drive() must be called before the first transfer")
        self._driven = True

    def run_flush(self) -> None:
        """The loop's end-of-instant wake-up (driven network)."""
        self.flush_key = None
        self._flush()

    def run_timer(self) -> None:
        """The loop's completion wake-up (driven network)."""
        self.timer_key = None
        self._complete_due()

    @property
    def active_flows(self) -> int:
        return self._active

    def flush(self) -> None:
        """Account bytes on every link up to now (call before reading counters)."""
        now = self.env._now
        for link in self.links:
            self._account_link(link, now)

    # ------------------------------------------------------------------------------------ internals
    def _component(self, seed_links: Iterable[Link], joined: list[Flow],
                   split: bool) -> tuple[list[Link], list[Flow], list[Link]]:
        """The flows `joined` (new, not yet rated) and the links and flows connected to them and to
        `seed_links` through shared flows, in discovery order (which is deterministic: seeds and new
        flows are ordered and every link keeps its flows in insertion order).

        With `split`, a link that is not a seed and has slack (`_has_slack`, counting the most each new
        flow on it can take) is not crossed: it cannot bind, so the flows beyond it keep their rates.
        Such links come back as the third list, to be checked after the solve (`_binding_boundary`);
        one that would bind after all is a seed of the next try (`_recompute`), so it is crossed. This
        keeps the solve to the part of a large component that can actually change: at 48P96D the whole
        components reach hundreds of flows, joined mostly through host-DRAM and compute-NIC links
        that are far from full. A new flow's own links are tested like any other: a new storage read
        crosses its storage NIC (it can fill it) but not its node's DRAM (500 GB/s, with room)."""
        self._stamp += 1  # marks what this search has seen (cheaper than per-search sets)
        stamp = self._stamp
        links: list[Link] = []
        flows: list[Flow] = []
        boundary: list[Link] = []
        # The links to visit: a stack in `self._stack[:top]`, a list kept from search to search (a
        # list of its own per search, shrinking as it was popped, cost reallocations).
        stack = self._stack
        top = 0
        for link in seed_links:
            link.seen = -stamp  # a seed, not yet visited (stamps are positive: no other link has it)
            top = _push(stack, top, link)
        for flow in joined:
            flow.seen = stamp
            flows.append(flow)
            for on in flow.path:
                top = _push(stack, top, on)
        while top:
            top -= 1
            link = stack[top]
            if link.seen == stamp:
                continue
            seed = link.seen == -stamp
            link.seen = stamp
            if split and not seed and self._has_slack(link):
                boundary.append(link)
                continue
            links.append(link)
            for flow in link.flows:
                if flow.seen != stamp:
                    flow.seen = stamp
                    flows.append(flow)
                    for on in flow.path:  # only links not yet seen (the others would be skipped)
                        if on.seen != stamp:
                            top = _push(stack, top, on)
        return links, flows, boundary

    def _has_slack(self, link: Link) -> bool:
        """Far (`_SPLIT_SLACK`) from full: the total below capacity, and HIGH below capacity less
        the LOW guarantee (what HIGH may fill on its first pass), with the new flows that joined the
        link at the most they can get."""
        high = link.rate_high + link.joining_high
        capacity = link.capacity * (1 - _SPLIT_SLACK)
        return high + link.rate_low + link.joining_low < capacity and high < capacity * (1 - self.low_class_share)

    def _binding_boundary(self, boundary: list[Link], stamp: int, mark: int) -> list[Link]:
        """The `boundary` links that would bind at the new rates (with `_SPLIT_MARGIN`), in total
        or for HIGH's first pass. With none, a solve without the boundary equals the whole
        component's solve: progressive filling over the whole component never picks a boundary
        link, so every flow gets the same rate, to the bit. (Valid while no solve has needed the
        refill, so that every HIGH flow in the network runs at its cap; `_recompute` checks that.)
        A boundary link no changed flow crosses (not marked with `mark`) keeps the rates with which
        it had slack, so it needs no check."""
        share = self.low_class_share
        binding = []
        for link in boundary:
            if link.mark != mark:
                continue
            high, low = _class_rates(link, stamp)
            capacity = link.capacity * (1 - _SPLIT_MARGIN)
            if high + low >= capacity or high >= capacity * (1 - share):
                binding.append(link)
        return binding

    def _request_flush(self) -> None:
        """Re-rate once at the end of this instant. Many flows start and end at the same instant (a
        batch's layers, a pass's all-to-all, a transfer that starts when another ends): one solve
        for all of them, after every other event of the instant (`_END_OF_INSTANT`), instead of one
        per change. No time passes meanwhile, so no bytes move at the stale rates."""
        if self._flush_pending:
            return
        self._flush_pending = True
        if self._driven:  # the key SimPy's schedule() would give the event below
            self.flush_key = (self.env._now, _END_OF_INSTANT, next(self.env._eid))
            return
        event = simpy.Event(self.env)
        event._ok, event._value = True, None  # a triggered event, as SimPy's own Timeout sets it
        event.callbacks.append(self._flush)
        self.env.schedule(event, _END_OF_INSTANT)  # type: ignore[arg-type]  # an int priority

    def _flush(self, _event=None) -> None:
        self._flush_pending = False
        if self._dirty or self._joined:
            self._recompute(())
        else:
            self._arm_timer()

    def _recompute(self, seed_links: Iterable[Link]) -> None:
        """Re-rate the new flows, and the components of `seed_links` and of every link a finished flow
        left that bound some flow."""
        seeds = list(self._dirty) + list(seed_links)
        self._dirty = {}
        joined = self._joined
        self._joined = []
        now = self.env._now
        self.recomputations += 1
        links, flows, boundary = self._component(seeds, joined, split=self._split_ok)
        refilled = solve_in_place(links, flows, self.low_class_share, boundary)  # new rates: flow.solved
        self.flows_solved += len(flows)
        mark = self._mark_changed(seeds, flows)
        crossed: list[Link] = []  # boundary links found binding: seeds of the next search as well
        while boundary:
            binding = [] if refilled else self._binding_boundary(boundary, self._stamp, mark)
            if not refilled and not binding:
                self.split_solves += 1
                break
            # Some boundary link would bind: solve again, crossing it (the same argument then holds
            # for the new boundary), or the whole component after a refill (see below).
            self.split_fallbacks += 1
            if refilled:
                links, flows, boundary = self._component(seeds, joined, split=False)
            else:
                crossed += binding
                links, flows, boundary = self._component(seeds + crossed, joined, split=True)
            refilled = solve_in_place(links, flows, self.low_class_share, boundary)
            self.flows_solved += len(flows)
            mark = self._mark_changed(seeds, flows)
        for flow in joined:  # rated now: its links count its rate, not its most
            for link in flow.path:
                link.joining_high = 0.0
                link.joining_low = 0.0
        if refilled:
            # A HIGH flow is link-limited: a later split would have to know every HIGH flow's
            # first-pass rate, which is not kept. Solve whole components from now on.
            self._split_ok = False
        stamp = self._stamp
        rated = links + boundary if boundary else links
        for link in rated:
            if link.mark != mark:
                continue  # same flows at the same rates: the same sums (see _mark_changed)
            high, low = _class_rates(link, stamp)
            if high != link.rate_high or low != link.rate_low:
                self._account_link(link, now)  # bytes so far at the old rates
                link.rate_high = high
                link.rate_low = low
                if high + low > link.capacity * (1 + 1e-6):  # invariant: capacity
                    self.violations.append(f"t={now:.9f}: {link.name} at {high + low:.6g} B/s > "
                                           f"capacity {link.capacity:.6g}")
        for flow in flows:
            rate = flow.solved
            if rate == flow.rate and rate > 0:
                continue  # same rate, so its progress and pending finish time still hold
            flow.remaining -= flow.rate * (now - flow._last_t)
            flow._last_t = now
            flow.rate = rate
            if rate > 0:
                self._due.predict(flow, now + max(flow.remaining, 0.0) / rate)
            else:
                self._due.forget(flow)
                self.violations.append(f"t={now:.9f}: flow {flow} got rate 0 (starved)")
        self._check_low_guarantee(rated, now)
        if self._unchecked:
            self._check_low_guarantee(list(self._unchecked), now)
            self._unchecked = {}
        self._arm_timer()

    def _mark_changed(self, seeds: list[Link], flows: list[Flow]) -> int:
        """Mark the links whose class rates a re-rate may change: the seeds (a flow joined or left)
        and the links of every flow whose rate changes. Every other link keeps the sums it has:
        outside a re-rate a link's rates are always its flows' rates summed in its own flow order
        (`_class_rates`; a finished flow's links are re-summed or re-rated at once), so summing the
        same rates again would give the same bits. Returns the mark."""
        self._mark += 1
        mark = self._mark
        for link in seeds:
            link.mark = mark
        for flow in flows:
            rate = flow.solved
            if rate == flow.rate and rate > 0:
                continue
            for link in flow.path:
                link.mark = mark
        return mark

    def _check_low_guarantee(self, links: list[Link], now: float) -> None:
        """Invariant: LOW below its guarantee on a link only if every LOW flow there is limited by
        its own cap or has its bottleneck on another link of its path (`_bottlenecked_elsewhere`)."""
        share = self.low_class_share
        for link in links:
            low_rate = link.rate_low
            if low_rate >= link.capacity * share * (1 - 1e-6) or not link.flows:
                continue
            for flow in link.flows:
                if flow.high:
                    continue
                capped = flow.max_rate is not None and flow.rate >= flow.max_rate * (1 - 1e-6)
                if not (capped or _bottlenecked_elsewhere(flow, link, share)):
                    self.violations.append(f"t={now:.9f}: low class starved on {link.name} "
                                           f"({low_rate:.6g} B/s < guarantee)")
                    return

    def _arm_timer(self) -> None:
        finish = self._due.first_s()  # inf when no flow is predicted to finish: no timer
        if finish < self._timer_at - _TIME_TOLERANCE_S:
            # Only the latest armed timer acts; an earlier one that fires later is ignored, so timers
            # never multiply.
            self._timer_at = finish
            delay = max(finish - self.env._now, 0.0)
            if self._driven:  # the key of the Timeout below (SimPy's Timeout.__init__ and schedule())
                self.timer_key = (self.env._now + delay, _NORMAL, next(self.env._eid))
                return
            self._timer = self.env.timeout(delay)
            self._timer.callbacks.append(self._on_timer)

    def _on_timer(self, event) -> None:
        if event is self._timer:  # a later-armed timer replaced this one: ignore it
            self._complete_due()

    def _complete_due(self) -> None:
        """Finish the flows due now and re-rate what they leave."""
        now = self.env._now
        self._timer = None
        self._timer_at = _INF
        done: list[Flow] = self._due.pop_due(now + _TIME_TOLERANCE_S)
        if not done:
            self._arm_timer()
            return
        # Which links bound some flow before the finished ones leave (link -> bound). Only those can
        # change another flow's rate: a link with slack limits nobody, so its other flows keep their
        # rates when a flow leaves it (the same reasoning as the split in `_component`).
        touched: dict[Link, bool] = {}
        skip = self._skip_idle
        for flow in done:
            for link in flow.path:
                if link not in touched:
                    touched[link] = not (skip and self._has_slack(link))
        for flow in done:
            flow.remaining -= flow.rate * (now - flow._last_t)
            flow._last_t = now
            self._finish(flow)
        seeds: list[Link] = []
        idle: list[Link] = []
        for link, bound in touched.items():
            if bound and link.flows:
                seeds.append(link)
            else:
                # Nothing to re-rate: the link's rates are its remaining flows' (summed in its own
                # flow order, as a solve would, so the bytes it accounts stay the same to the bit).
                link.rate_high, link.rate_low = _class_rates(link, -1)
                idle.append(link)
        self.skipped_links += len(idle)
        if seeds or self._flush_pending:
            for link in idle:  # checked after the re-rate, when the links that bound are full again
                self._unchecked[link] = None
        else:
            self._check_low_guarantee(idle, now)
        if seeds:
            # Rates of the survivors change only in the components of the links that bound; they are
            # re-rated with the flows that start at this instant, once (`_flush`, which arms the timer).
            for link in seeds:
                self._dirty[link] = None
            self._request_flush()
        else:
            self.skipped_solves += 1
        if not self._flush_pending:
            self._arm_timer()

    def _finish(self, flow: Flow) -> None:
        now = self.env._now
        # Completions within _TIME_TOLERANCE_S are merged, so a flow may finish that much early.
        slack_bytes = max(flow.size * 1e-6, 1.0, 2 * flow.rate * _TIME_TOLERANCE_S)
        for link in flow.path:
            self._account_link(link, now)
        high = flow.high
        for link in flow.path:
            link.flows.remove(flow)
            if high:
                link.rate_high -= flow.rate
            else:
                link.rate_low -= flow.rate
        self._active -= 1
        flow.rate = 0.0
        self._due.forget(flow)
        self.flows_finished += 1
        self.bytes_by_tag[flow.tag] = self.bytes_by_tag.get(flow.tag, 0.0) + flow.size
        if abs(flow.remaining) > slack_bytes:
            self.violations.append(f"t={now:.9f}: flow {flow} finished with {flow.remaining:.6g} bytes unaccounted")
        if flow.event is not None:
            flow.event.succeed()

    def _account_link(self, link: Link, now: float) -> None:
        """Add the bytes that crossed `link` since its last update, split into time bins."""
        t0 = link._last_t
        if now <= t0:
            return
        link._last_t = now
        high = link.rate_high
        low = link.rate_low
        if high <= 0 and low <= 0:
            return
        link.bytes_high += high * (now - t0)
        link.bytes_low += low * (now - t0)
        bin_s = self.bin_s
        b = int(t0 // bin_s)
        t = t0
        while t < now:
            end = min((b + 1) * bin_s, now)
            link.add_to_bin(b, high * (end - t), low * (end - t))
            t = end
            b += 1


def _push(stack: list, top: int, item: object) -> int:
    """Put `item` at `stack[top]` (a stack kept in the first `top` entries of a reused list); the new top."""
    if top < len(stack):
        stack[top] = item
    else:
        stack.append(item)
    return top + 1


def _repeats_a_link(path: Sequence[Link]) -> bool:
    """Whether a link appears twice in `path` (paths are a few links long: no set to allocate)."""
    for i in range(1, len(path)):
        for j in range(i):
            if path[i] is path[j]:
                return True
    return False


def _bottlenecked_elsewhere(flow: Flow, link: Link, low_class_share: float) -> bool:
    """Whether the LOW `flow` has its bottleneck on a link of its path other than `link`: that link
    is full, LOW there has at least its guarantee (else the arbiter would give LOW more), and no
    LOW flow there runs faster than `flow` (else max-min would give `flow` more)."""
    for other in flow.path:
        if other is link:
            continue
        high = other.rate_high
        low = other.rate_low
        if high + low < other.capacity * (1 - 1e-6) or low < other.capacity * low_class_share * (1 - 1e-6):
            continue
        fastest = True
        for peer in other.flows:
            if not peer.high and peer.rate > flow.rate * (1 + 1e-6):
                fastest = False
                break
        if fastest:
            return True
    return False


def _class_rates(link: Link, stamp: int) -> tuple[float, float]:
    """(HIGH, LOW) bytes/s through `link` at the new rates of the flows marked with `stamp` (their
    `solved` rates; stamp -1 marks none) and the current rates of its other flows. Summed in the
    link's own flow order, whatever a component's discovery order, so split and whole solves give the
    same bits."""
    high = low = 0.0  # two sums, each in the link's flow order (as indexing [HIGH, LOW] would add them)
    for flow in link.flows:
        rate = flow.solved if flow.seen == stamp else flow.rate
        if flow.high:
            high += rate
        else:
            low += rate
    return high, low
