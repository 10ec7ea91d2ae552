"""Mooncake (FAST'25) request traces: JSON Lines of ``timestamp, input_length, output_length, hash_ids``.

Hits come from the block hashes (512-token blocks, ids global to the file): a request's cached
tokens are its leading blocks already seen earlier in the file (a block id implies its whole prefix),
``min(hits * 512, input_length)`` since the last, partial block is hashed too.

The trace has no session ids. Turns are derived by **prefix chaining**: a request continues the
session of the latest earlier request whose full blocks (``input_length // 512`` of them, at least 2)
are all a prefix of its own ``hash_ids``; with several candidates, the one covering the longest prefix
wins. Anything else starts a new session. A session may branch (two requests extending the same
earlier one land in the same session, in timestamp order). The heuristic reproduces the inferred
session counts in ``traces-public/mooncake-fast25/SOURCE.md``.

Each session becomes a :class:`Trajectory`: ``arrival_s`` is its first request's timestamp, a later
turn's ``think_time_s`` is the gap between its timestamp and the previous turn's (the trace only has
arrival times, so the gap includes the original service time), and ``meta["turn_arrival_s"]`` keeps
every turn's original arrival time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dpsim.workload.errors import numbered_lines
from dpsim.workload.format import TraceError, parse_json_line
from dpsim.workload.readers._common import ReadContext, prefix_hits
from dpsim.workload.trajectory import Trajectory, Turn

BLOCK_TOKENS = 512
REQUIRED = ("timestamp", "input_length", "output_length", "hash_ids")
MIN_CHAIN_BLOCKS = 2


def looks_like(obj) -> bool:
    return isinstance(obj, dict) and "input_length" in obj and "output_length" in obj and "timestamp" in obj


def _parse(obj, where: str, block: int) -> tuple[float, int, int, list]:
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: a request must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise TraceError(f"{where}: missing {missing}")
    ts, inp, out, hashes = (obj[k] for k in REQUIRED)
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not ts >= 0 or ts == float("inf"):
        raise TraceError(f"{where}: 'timestamp' must be a number >= 0 (ms), got {ts!r}")
    for key, value in (("input_length", inp), ("output_length", out)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TraceError(f"{where}: '{key}' must be an integer >= 1, got {value!r}")
    if not isinstance(hashes, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hashes):
        raise TraceError(f"{where}: 'hash_ids' must be a list of integers")
    if len(hashes) > -(-inp // block):
        raise TraceError(f"{where}: {len(hashes)} hash_ids for {inp} tokens (at most ceil({inp}/{block}))")
    return float(ts), inp, out, hashes


def iter_mooncake(path: str | Path, ctx: ReadContext | None = None, block: int = BLOCK_TOKENS,
                  lines=None) -> Iterator[Trajectory]:
    """Sessions of a Mooncake trace, in order of their first request. ``lines`` (an iterable of
    text lines) replaces reading ``path``, which is then only used in messages."""
    ctx = ctx or ReadContext()
    path = Path(path)
    records = []  # (timestamp_ms, lineno, input, output, hashes)
    numbered = numbered_lines(path, lambda: open(path, "rb")) if lines is None else enumerate(lines, 1)
    for lineno, line in numbered:
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = parse_json_line(line, where)
            ts, inp, out, hashes = _parse(obj, where, block)
        except TraceError as e:
            if not ctx.skip_bad:
                raise
            ctx.skip(str(e))
            continue
        records.append((ts, lineno, inp, out, hashes))
    if not records and not ctx.skipped:
        raise TraceError(f"{path}: empty file (no Mooncake requests)")
    unsorted = any(records[i][0] > records[i + 1][0] for i in range(len(records) - 1))
    if unsorted:
        records.sort(key=lambda r: r[0])  # stable: file order among equal timestamps
        ctx.notes.append("requests were not sorted by timestamp; read in timestamp order")

    seen: set = set()
    tails: dict = {}  # id of a request's last full block -> session index
    sessions: list[list] = []  # per session: [(ts, lineno, input, cached, output)]
    for ts, lineno, inp, out, hashes in records:
        k = prefix_hits(hashes, seen)
        seen.update(hashes[k:])
        cached = min(k * block, inp)
        owner = None
        for j in range(len(hashes), MIN_CHAIN_BLOCKS - 1, -1):
            owner = tails.get(hashes[j - 1])
            if owner is not None:
                break
        if owner is None:
            owner = len(sessions)
            sessions.append([])
        sessions[owner].append((ts, lineno, inp, cached, out))
        full = inp // block
        if full >= MIN_CHAIN_BLOCKS:
            tails[hashes[full - 1]] = owner

    for i, reqs in enumerate(sessions):
        turns, prev = [], None
        for ts, _lineno, inp, cached, out in reqs:
            turns.append(Turn(inp, cached, out, 0.0 if prev is None else (ts - prev) / 1000.0))
            prev = ts
        meta = {"source": "mooncake", "lines": [r[1] for r in reqs],
                "turn_arrival_s": [r[0] / 1000.0 for r in reqs]}
        yield Trajectory(f"s{i}", turns, reqs[0][0] / 1000.0, meta)
