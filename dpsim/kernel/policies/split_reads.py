"""Split reads: one request's hit KV read from its PE node and its DE node at once.

See docs/whatif.md#2-split-reads-one-requests-kv-from-both-paths-at-once.

The paper's scheduler reads a request's whole hit KV on one side, the PE node or the DE node,
whichever has the shorter storage read queue (paper §5); reading one request from both sides at once,
in proportions chosen from both queues, is left as future work (paper §6.1). With split reads on
(`policy.read_split: balanced`) the scheduler gives the DE node the share of the hit that leaves
both nodes' read queues as equal as possible after the request:

    pe_queue + (hit - de_share) = de_queue + de_share   =>   de_share = (pe_queue - de_queue + hit) / 2,

clipped to [0, hit] and rounded to whole KV blocks (storage I/O moves Full Blocks, paper §3). Both
nodes have one storage NIC of the same rate, so equal queues mean both finish reading together.
A share of 0 or the whole hit is an ordinary whole-request read ("P" or "D"); anything between is
a split read ("S"), whose two parts are read in parallel, each through its node's storage NIC and
read slots, and loaded into the PE's HBM over their own paths (docs/modeling.md).
"""

from __future__ import annotations

from dpsim.kernel.entities import ReadSide


def balanced_de_share(pe_queue_tokens: float, de_queue_tokens: float, hit_tokens: int, block_tokens: int) -> int:
    """Hit tokens the DE node reads so that both read queues end as equal as possible: the exact
    balance point rounded to whole blocks, clipped to [0, hit_tokens]. A hit that is not a whole
    number of blocks keeps its partial block on the side the rounding leaves it."""
    if hit_tokens <= 0:
        return 0
    exact = (pe_queue_tokens - de_queue_tokens + hit_tokens) / 2.0
    blocks = round(exact / block_tokens)
    return int(min(max(blocks * block_tokens, 0), hit_tokens))


def side_of_share(de_share_tokens: int, hit_tokens: int) -> ReadSide:
    """The read side a DE share amounts to: PREFILL (none), DECODE (all) or SPLIT (part)."""
    if de_share_tokens <= 0:
        return ReadSide.PREFILL
    if de_share_tokens >= hit_tokens:
        return ReadSide.DECODE
    return ReadSide.SPLIT
