"""Stand-ins for the engine views a scheduler reads (index, tok, seq, free HBM, the node's read queue),
and the decode groups they belong to, shared by the scheduler tests."""

from dataclasses import dataclass, field


@dataclass
class Node:
    read_queue_tokens: int = 0
    name: str = "node"  # a PrefillPool groups engines by node name


@dataclass
class E:
    index: int
    tok: int = 0
    seq: int = 0
    hbm_free: float = 1e12
    node: Node = field(default_factory=Node)


class G:
    """A decode group view: its engines and their total tok (as the simulation keeps it)."""

    def __init__(self, engines: list[E]):
        self.engines = engines
        self.tok = sum(e.tok for e in engines)
