"""The fluid network's elements: links and the flows that cross them (`dpsim.kernel.resources.net`
moves them; `dpsim.kernel.resources.fluid` rates them). A leaf module, so that the solver and the
network can both use their compiled types without importing each other: with the types in the
network's module, importing the compiled solver first failed (a cycle through net.pxd)."""

from __future__ import annotations

import enum
import math
from array import array
from bisect import bisect_left

try:  # Cython's pure-Python mode: compiled, the attributes are the C fields of elements.pxd
    import cython

    COMPILED = bool(cython.compiled)
except ImportError:  # Cython not installed: pure Python
    COMPILED = False


class TrafficClass(enum.IntEnum):
    """Virtual-lane class of a flow."""

    HIGH = 0  # model-execution collectives
    LOW = 1  # KV cache transfers, H2D/D2H copies, storage I/O


_HIGH = TrafficClass.HIGH  # a flow's class is always the enum member (Network.transfer converts it)
_INF = math.inf  # (compiled, a C double: elements.pxd)


class Link:
    """A unidirectional resource with a capacity in bytes/s (a NIC direction, DRAM, a storage client)."""

    if not COMPILED:  # compiled, the attributes are C fields declared in elements.pxd
        __slots__ = ("name", "capacity", "flows", "bytes_high", "bytes_low", "rate_high", "rate_low", "_last_t",
                     "bin_index", "bin_high", "bin_low", "_past_bins", "_past_high", "_past_low",
                     "index", "avail", "unfixed", "members", "n_members", "key", "seen", "mark",
                     "joining_high", "joining_low")
        # the last nine: working state


    def __init__(self, name: str, capacity_bytes_per_s: float, index: int):
        if not capacity_bytes_per_s > 0 or math.isinf(capacity_bytes_per_s):
            raise ValueError(f"link {name}: capacity must be a positive finite bytes/s, got {capacity_bytes_per_s}")
        self.name = name
        self.capacity = float(capacity_bytes_per_s)
        self.index = index
        self.flows: list[Flow] = []  # in arrival order, so traversals are deterministic (each flow once)
        self.bytes_high = 0.0  # bytes moved so far, by class (Network._account_link)
        self.bytes_low = 0.0
        self.rate_high = 0.0  # the current rates, by class, bytes/s: its flows' rates summed in flow order
        self.rate_low = 0.0
        self._last_t = 0.0
        # Bytes per time bin (`Network.bin_s`), by class: the bin being added to as two doubles, the
        # bins before it in three arrays (16 bytes a bin and class, where a dict of [high, low] lists
        # took ~190: 3.6 GB at 48P96D). Only bins some traffic crossed are recorded (`bins`).
        self.bin_index = -1  # the bin being added to; -1: none yet
        self.bin_high = 0.0
        self.bin_low = 0.0
        self._past_bins = array("q")  # the bins before it, ascending
        self._past_high = array("d")
        self._past_low = array("d")
        self.seen = 0
        self.mark = 0  # the last re-rate that may change this link's rates (Network._mark_changed)
        # The most that the flows which joined since the last re-rate can add, by class, bytes/s
        # (Network._start; Network._has_slack counts it)
        self.joining_high = 0.0
        self.joining_low = 0.0
        self.avail = 0.0  # the rate solver's working state (dpsim.kernel.resources.fluid.SolverLink)
        self.unfixed = 0
        # The solver's flows on this link: the first `n_members` entries of `members`. The list is
        # reused, not cleared, from one solve to the next (clearing freed its storage, and the
        # appends that followed allocated it again: ~3 % of a run); entries past n_members are stale.
        self.members: list = []
        self.n_members = 0
        self.key = 0.0  # the link's fair share in the compiled solver's heap

    def __repr__(self) -> str:
        return f"Link({self.name}, {self.capacity:.3g} B/s)"

    @property
    def rate(self) -> float:
        """Current total rate through the link, bytes/s."""
        return self.rate_high + self.rate_low

    def add_to_bin(self, b: int, high_bytes: float, low_bytes: float) -> None:
        """Add bytes to time bin `b` (`Network._account_link`). Time only moves forward, so `b` is
        almost always the bin being added to or a later one; an earlier one (a boundary that floating
        point puts on the other side) is found among the past bins, or put in its place."""
        if b != self.bin_index:
            if b > self.bin_index:
                if self.bin_index >= 0:
                    self._past_bins.append(self.bin_index)
                    self._past_high.append(self.bin_high)
                    self._past_low.append(self.bin_low)
                self.bin_index = b
                self.bin_high = 0.0
                self.bin_low = 0.0
            else:
                self._add_to_past_bin(b, high_bytes, low_bytes)
                return
        self.bin_high += high_bytes
        self.bin_low += low_bytes

    def _add_to_past_bin(self, b: int, high_bytes: float, low_bytes: float) -> None:
        i = bisect_left(self._past_bins, b)
        if i == len(self._past_bins) or self._past_bins[i] != b:
            self._past_bins.insert(i, b)
            self._past_high.insert(i, 0.0)
            self._past_low.insert(i, 0.0)
        self._past_high[i] += high_bytes
        self._past_low[i] += low_bytes

    def bin_arrays(self) -> tuple[array, array, array]:
        """The recorded time bins, ascending, and the bytes of each by class: (bins, high, low)."""
        bins, high, low = array("q", self._past_bins), array("d", self._past_high), array("d", self._past_low)
        if self.bin_index >= 0:
            bins.append(self.bin_index)
            high.append(self.bin_high)
            low.append(self.bin_low)
        return bins, high, low

    @property
    def bins(self) -> dict[int, list[float]]:
        """Time-bin index -> bytes [HIGH, LOW], for the bins some traffic crossed (a copy)."""
        bins, high, low = self.bin_arrays()
        return {b: [h, lo] for b, h, lo in zip(bins, high, low)}

    @property
    def bytes_by_class(self) -> list[float]:
        """Bytes moved so far, [HIGH, LOW] (up to the last account: `Network.flush` first)."""
        return [self.bytes_high, self.bytes_low]


class Flow:
    """A transfer of `size` bytes over `path`. Read-only to callers except through Network."""

    if not COMPILED:
        __slots__ = ("path", "size", "remaining", "traffic_class", "max_rate", "tag", "rate", "event",
                     "_last_t", "_version", "seq", "start_t", "due_s", "due_pos", "solved", "fixed", "seen", "high")
        # due_s, due_pos: the completion queue's (dpsim.kernel.resources.completions); the last three: the solver's

    def __init__(self, path, size, traffic_class, max_rate, tag, event, seq, now):
        self.path: tuple[Link, ...] = path
        self.size = size
        self.remaining = size
        self.traffic_class = traffic_class
        self.high = traffic_class is _HIGH  # the class as a flag, for the solver's loops
        self.max_rate = max_rate
        self.tag = tag
        self.rate = 0.0
        self.event = event
        self._last_t = now
        self._version = 0
        self.seq = seq
        self.start_t = now
        self.seen = 0
        self.due_s = _INF  # predicted finish time, seconds (compiled CompletionQueue)
        self.due_pos = -1  # position in the CompletionQueue; -1: no prediction
        self.solved = 0.0  # the rate solver's working state (dpsim.kernel.resources.fluid.SolverFlow)
        self.fixed = False

    def __repr__(self) -> str:
        return f"Flow({self.tag}, {self.remaining:.3g}/{self.size:.3g} B @ {self.rate:.3g} B/s)"
