"""The flows' predicted finish times, earliest first (`dpsim.kernel.resources.net.Network` keeps one).

A flow's finish time is predicted at each re-rate that changes its rate (rates are constant between
re-rates, so the prediction is exact) and forgotten when it finishes or starves. The network asks
for the earliest prediction (to arm its timer) and takes the flows that are due.

Two forms of one queue, ordered by (finish time, flow sequence number), which is unique, so both
give the flows in the same order:
  - compiled (dpsim.tools.compiled): an indexed binary heap of the flows themselves, keyed by typed
    fields (`due_s`, `due_pos`), so a new prediction moves the flow's one entry;
  - pure Python: heapq over (finish, seq, version, flow) tuples, where a new prediction pushes a new
    tuple and the stale ones are skipped (heapq's C code beats a heap written in Python).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

try:  # Cython's pure-Python mode: cython.compiled is True only in the compiled build
    import cython

    COMPILED = bool(cython.compiled)
except ImportError:  # Cython not installed: pure Python
    COMPILED = False


class CompletionQueue:
    """Predicted finish times of flows (`dpsim.kernel.resources.elements.Flow`), earliest first."""

    def __init__(self) -> None:
        self._heap: list[Any] = []  # compiled: flows; pure: (finish, seq, version, flow) tuples
        self._live = 0  # flows with a prediction (the pure heap also holds stale tuples)

    def __len__(self) -> int:
        return self._live

    def predict(self, flow: Any, finish_s: float) -> None:
        """`flow` will finish at `finish_s` (replacing any earlier prediction)."""
        heap = self._heap
        if not COMPILED:
            if flow.due_pos < 0:
                flow.due_pos = 0  # pure Python: only marks "predicted"
                self._live += 1
            flow._version += 1
            heapq.heappush(heap, (finish_s, flow.seq, flow._version, flow))
            if len(heap) > 4 * self._live + 256:
                # Mostly stale tuples: drop them, so that pops stay log(live flows). The live ones come
                # out in the same order.
                self._heap = [entry for entry in heap if entry[2] == entry[3]._version]
                heapq.heapify(self._heap)
            return
        if flow.due_pos < 0:
            flow.due_s = finish_s
            flow.due_pos = len(heap)
            heap.append(flow)
            self._live += 1
            _sift_up(heap, flow.due_pos)
        elif finish_s < flow.due_s:
            flow.due_s = finish_s
            _sift_up(heap, flow.due_pos)
        else:
            flow.due_s = finish_s
            _sift_down(heap, flow.due_pos)

    def forget(self, flow: Any) -> None:
        """`flow` has no prediction any more (it starved, or it finished)."""
        if flow.due_pos < 0:
            return
        self._live -= 1
        if not COMPILED:
            flow.due_pos = -1
            flow._version += 1  # its tuples are stale now
            return
        _remove(self._heap, flow.due_pos)

    def first_s(self) -> float:
        """The earliest predicted finish time (inf when none)."""
        heap = self._heap
        if COMPILED:
            if not heap:
                return math.inf
            first = heap[0]
            return first.due_s
        while heap and heap[0][2] != heap[0][3]._version:
            heapq.heappop(heap)  # a stale prediction
        return heap[0][0] if heap else math.inf

    def pop_due(self, until_s: float) -> list:
        """Take the flows predicted to finish at or before `until_s`, earliest first."""
        heap = self._heap
        due: list = []
        if COMPILED:
            while heap:
                first = heap[0]
                if first.due_s > until_s:
                    break
                due.append(first)
                _remove(heap, 0)
            self._live -= len(due)
            return due
        while heap and heap[0][0] <= until_s:
            _, _, version, flow = heapq.heappop(heap)
            if version == flow._version and flow.due_pos >= 0:
                flow.due_pos = -1
                due.append(flow)
        self._live -= len(due)
        return due


# The compiled form's heap: flows ordered by (due_s, seq); each flow knows its position (due_pos).

def _before(a: Any, b: Any) -> bool:
    return a.due_s < b.due_s or (a.due_s == b.due_s and a.seq < b.seq)


def _sift_up(heap: list, pos: int) -> None:
    item = heap[pos]
    while pos > 0:
        parent = (pos - 1) >> 1
        above = heap[parent]
        if not _before(item, above):
            break
        heap[pos] = above
        above.due_pos = pos
        pos = parent
    heap[pos] = item
    item.due_pos = pos


def _sift_down(heap: list, pos: int) -> None:
    n = len(heap)
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        right = child + 1
        if right < n and _before(heap[right], heap[child]):
            child = right
        below = heap[child]
        if not _before(below, item):
            break
        heap[pos] = below
        below.due_pos = pos
        pos = child
    heap[pos] = item
    item.due_pos = pos


def _remove(heap: list, pos: int) -> None:
    """Take the flow at `pos` out of the heap."""
    gone = heap[pos]
    gone.due_pos = -1
    last = heap.pop()
    if pos == len(heap):
        return  # it was the last one
    heap[pos] = last
    last.due_pos = pos
    if pos > 0 and _before(last, heap[(pos - 1) >> 1]):
        _sift_up(heap, pos)
    else:
        _sift_down(heap, pos)
