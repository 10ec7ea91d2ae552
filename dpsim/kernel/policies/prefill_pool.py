"""The prefill engines open for placement, with each node's least-loaded engine kept at hand.

A scheduler sees the pool as a sequence of engines (`EngineView`s, in pool order). The DualPath rule
(docs/architecture.md#paper-scheduler) only ever picks, on each node, the engine with the smallest
(tok, index): the read-queue test is per node, and the beta test and the ranking are by tok, then
index. So `leaders()`, one engine per node, gives it the same choice as all engines. At 48P96D that is
48 engines per dispatch instead of 384 (the scan was 9 % of the run, docs/reproduce.md#where-the-time-goes).

The simulation tells the pool when an engine's tok changes (`load_changed`); the node's leader is
then found again, among its 8 engines, when next asked for. The list of leaders is kept too, and only
the changed nodes' entries are replaced: a dispatch asks for it two or three times (whether any engine
has room, then the pick) while one engine's load changes in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any


class _NodeSlot:
    """One node's engines in the pool and its leader (None: to be found again)."""

    __slots__ = ("engines", "leader", "position")

    def __init__(self) -> None:
        self.engines: list[Any] = []
        self.leader: Any = None
        self.position = 0  # its place in the kept list of leaders


class PrefillPool(Sequence):
    """The prefill engines open for placement (a sequence, in the order they joined) and each
    node's least-loaded engine (`leaders`)."""

    def __init__(self, engines: Iterable[Any] = ()):
        self._engines: list[Any] = []
        self._slots: dict[str, _NodeSlot] = {}  # node name -> slot, in the order nodes joined
        self._slot_of: dict[int, _NodeSlot] = {}  # engine index -> its node's slot
        self._leaders: list[Any] | None = None  # leaders(), kept; None: to be built again
        self._stale: list[_NodeSlot] = []  # slots whose leader is to be found again in the kept list
        self.extend(engines)

    def __len__(self) -> int:
        return len(self._engines)

    def __getitem__(self, i):  # an index or a slice, as a list's
        return self._engines[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._engines)

    def extend(self, engines: Iterable[Any]) -> None:
        """Open `engines` for placement."""
        for engine in engines:
            slot = self._slots.get(engine.node.name)
            if slot is None:
                slot = self._slots[engine.node.name] = _NodeSlot()
            slot.engines.append(engine)
            slot.leader = None
            self._slot_of[engine.index] = slot
            self._engines.append(engine)
        self._leaders = None

    def remove_node(self, node_name: str) -> None:
        """Close the engines of node `node_name` (it leaves the prefill role)."""
        slot = self._slots.pop(node_name, None)
        if slot is None:
            return
        for engine in slot.engines:
            del self._slot_of[engine.index]
        self._engines = [e for e in self._engines if e.node.name != node_name]
        self._leaders = None

    def load_changed(self, engine: Any) -> None:
        """`engine`'s tok changed: its node's leader is to be found again."""
        slot = self._slot_of.get(engine.index)
        if slot is not None and slot.leader is not None:
            slot.leader = None
            self._stale.append(slot)

    def leaders(self) -> list[Any]:
        """Each node's engine with the smallest (tok, index), in the order the nodes joined. The
        pool's own list: read it, do not change it."""
        out = self._leaders
        if out is None:
            out = self._leaders = []
            for position, slot in enumerate(self._slots.values()):
                slot.position = position
                out.append(_leader(slot))
        else:
            for slot in self._stale:  # each marked once (load_changed), in a list that is still whole
                out[slot.position] = _leader(slot)
        self._stale.clear()
        return out


def _leader(slot: _NodeSlot) -> Any:
    """The slot's engine with the smallest (tok, index), found again if it was marked stale."""
    leader = slot.leader
    if leader is None:
        for e in slot.engines:
            if leader is None or e.tok < leader.tok or (e.tok == leader.tok and e.index < leader.index):
                leader = e
        slot.leader = leader
    return leader
