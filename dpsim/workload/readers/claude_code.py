"""Claude Code sessions in the kv-cache-tester format (WEKA; also SemiAnalysis AgentX, NVIDIA AIPerf).

One JSON object per session: ``{"id", "block_size": 64, "hash_id_scope": "local", "tool_tokens",
"system_tokens", "requests": [...]}``. A request is ``{"t", "type": "n"|"s", "in", "out",
"hash_ids", "think_time", "api_time", ...}`` or a sub-agent marker ``{"type": "subagent", "t",
"duration_ms", "requests": [...], ...}`` whose nested requests are the sub-agent's own calls.

Accepted inputs: a tar archive of session files (``.tar.xz``/``.tar.gz``/``.tar``, read member by
member, never unpacked), a directory of ``*.json`` session files, or one session file.

Mapping to trajectories (one per session, ``arrival_s`` None: the trace has no global clock):

* ``input_tokens = in``, ``output_tokens = out`` (the 0.06 % of calls with ``out == 0`` become 1, a
  turn generates at least one token; counted in the read notes).
* ``cached_tokens = 64 * (leading hash_ids already seen in this session)`` (ids are local to a file;
  sub-agents share the parent's namespace; the trailing partial block is not hashed).
* ``think_time_s = think_time`` (tool + user gap before the call); when it is missing, the gap
  ``t - (t_prev + api_time_prev)`` (clamped at 0).
* Sub-agents (``subagents="inline"``, default): the sub-agent's calls are spliced into the parent's
  turn list where the marker stands, with their own think times; the parent call after a sub-agent
  then waits ``t - t_marker`` (the marker's ``t`` is where the sub-agent finished) instead of its
  ``think_time``, which included the whole sub-agent run. Parallel sub-agents are replayed one after
  the other. ``subagents="drop"`` ignores them (the parent keeps its recorded think time).
  ``meta["subagent_turns"]`` counts spliced turns, ``meta["subagent_turn_index"]`` lists them and
  ``meta["subagent_start_index"]`` gives each sub-agent's first turn.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from dpsim.workload.errors import FILE_ERRORS, TraceError, describe
from dpsim.workload.readers._common import ReadContext, prefix_hits
from dpsim.workload.trajectory import Trajectory, Turn

BLOCK_TOKENS = 64


def looks_like(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("requests"), list) and (
        "block_size" in obj or "hash_id_scope" in obj
        or any(isinstance(r, dict) and "in" in r and "out" in r for r in obj["requests"][:3]))


def _num(r: dict, key: str, where: str, default=None):
    v = r.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
        raise TraceError(f"{where}: '{key}' must be a number >= 0, got {v!r}")
    return float(v)


class _Session:
    def __init__(self, where: str, block: int, ctx: ReadContext):
        self.where, self.block, self.ctx = where, block, ctx
        self.seen: set = set()
        self.turns: list[Turn] = []
        self.sub_index: list[int] = []
        self.n_subagents = 0
        self.sub_starts: list[int] = []  # index of each sub-agent's first spliced turn
        self.zero_out = 0
        self.derived_think = 0

    def call(self, r: dict, where: str, think: float, sub: bool) -> None:
        inp, out = r.get("in"), r.get("out")
        if isinstance(inp, bool) or not isinstance(inp, int) or inp < 1:
            raise TraceError(f"{where}: 'in' must be an integer >= 1, got {inp!r}")
        if isinstance(out, bool) or not isinstance(out, int) or out < 0:
            raise TraceError(f"{where}: 'out' must be an integer >= 0, got {out!r}")
        hashes = r.get("hash_ids")
        if not isinstance(hashes, list) or not all(isinstance(h, (int, str)) for h in hashes):
            raise TraceError(f"{where}: 'hash_ids' must be a list of block ids (integers or strings)")
        if len(hashes) > -(-inp // self.block):
            raise TraceError(f"{where}: {len(hashes)} hash_ids for {inp} tokens of {self.block}-token blocks")
        k = prefix_hits(hashes, self.seen)
        self.seen.update(hashes[k:])
        if out == 0:
            self.zero_out += 1
        if sub:
            self.sub_index.append(len(self.turns))
        self.turns.append(Turn(inp, min(k * self.block, inp), max(out, 1), think if self.turns else 0.0))

    def requests(self, reqs, where: str, subagents: str, sub: bool) -> None:
        if not isinstance(reqs, list):
            raise TraceError(f"{where}: 'requests' must be a list")
        prev_end = None  # (t, api_time) of the previous call at this level
        marker_end = None  # t of the last sub-agent marker since that call
        for i, r in enumerate(reqs):
            rw = f"{where}: requests[{i}]"
            if not isinstance(r, dict):
                raise TraceError(f"{rw}: must be an object")
            t = _num(r, "t", rw)
            if r.get("type") == "subagent":
                if subagents == "inline":
                    self.n_subagents += 1
                    self.sub_starts.append(len(self.turns))
                    self.requests(r.get("requests"), f"{rw} (sub-agent)", subagents, True)
                    marker_end = t if t is not None else marker_end
                continue
            think = _num(r, "think_time", rw)
            if think is None:
                self.derived_think += 1
                think = 0.0
                if prev_end is not None and t is not None and prev_end[0] is not None:
                    think = max(0.0, t - prev_end[0] - (prev_end[1] or 0.0))
            if marker_end is not None and t is not None:
                think = max(0.0, t - marker_end)
            self.call(r, rw, think, sub)
            prev_end, marker_end = (t, _num(r, "api_time", rw)), None


def session_to_trajectory(obj, where: str, ctx: ReadContext, subagents: str = "inline",
                          default_id: str = "") -> Trajectory:
    if not isinstance(obj, dict) or not isinstance(obj.get("requests"), list):
        raise TraceError(f"{where}: not a Claude Code session (a JSON object with 'requests')")
    block = obj.get("block_size", BLOCK_TOKENS)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise TraceError(f"{where}: 'block_size' must be a positive integer, got {block!r}")
    s = _Session(where, block, ctx)
    s.requests(obj["requests"], where, subagents, False)
    if not s.turns:
        raise TraceError(f"{where}: session has no LLM calls")
    meta = {"source": "claude_code", "file": where, "block_size": block,
            "models": obj.get("models"), "tool_tokens": obj.get("tool_tokens"),
            "system_tokens": obj.get("system_tokens"),
            "subagents": s.n_subagents, "subagent_turns": len(s.sub_index)}
    if s.sub_index:
        meta["subagent_turn_index"] = s.sub_index
        meta["subagent_start_index"] = s.sub_starts
    if s.zero_out:
        ctx.counts["calls with out=0 replayed as 1 generated token"] += s.zero_out
    if s.derived_think:
        ctx.counts["calls without think_time: gap taken from t and the previous api_time"] += s.derived_think
    return Trajectory(str(obj.get("id", default_id)), s.turns, None, meta)


def _load_json(data: bytes, where: str):
    if not data.strip():
        raise TraceError(f"{where}: empty session file")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise TraceError(f"{where}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TraceError(f"{where}:{line}: not UTF-8 text ({e.reason})") from None
    except (ValueError, RecursionError) as e:
        raise TraceError(f"{where}: invalid JSON ({describe(e)})") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _read(load, where: str) -> bytes:
    try:
        return load()
    except FILE_ERRORS as e:
        raise TraceError(f"{where}: {describe(e)}") from None


def _sources(path: Path) -> Iterator[tuple[str, Callable]]:
    """(name for messages, loader of bytes) for each session file."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise TraceError(f"{path}: directory has no *.json session files")
        for p in files:
            yield str(p), p.read_bytes
        return
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as tar:  # streams members in archive order
            for member in tar:
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                f = tar.extractfile(member)
                yield f"{path}!{member.name}", f.read
        return
    yield str(path), path.read_bytes


def iter_claude_code(path: str | Path, ctx: ReadContext | None = None,
                     subagents: str = "inline") -> Iterator[Trajectory]:
    if subagents not in ("inline", "drop"):
        raise ValueError(f"subagents must be 'inline' or 'drop', got {subagents!r}")
    ctx = ctx or ReadContext()
    path = Path(path)
    n = 0
    for where, load in _sources(path):
        try:
            obj = _load_json(_read(load, where), where)
            traj = session_to_trajectory(obj, where, ctx, subagents, Path(where.split("!")[-1]).stem)
        except TraceError as e:
            if not ctx.skip_bad:
                raise
            ctx.skip(str(e))
            continue
        except Exception as e:  # a Turn invariant (ValueError), a sub-agent nested too deeply, ...
            if not ctx.skip_bad:
                raise TraceError(f"{where}: {describe(e)}") from None
            ctx.skip(f"{where}: {describe(e)}")
            continue
        n += 1
        yield traj
    if n == 0 and not ctx.skipped:
        raise TraceError(f"{path}: no Claude Code session files found")
