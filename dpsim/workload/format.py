"""dpsim's native trajectory format, version 1: JSON Lines (and Parquet for large sets).

JSON Lines (`.jsonl`, optionally gzip-compressed as `.jsonl.gz`)
-----------------------------------------------------------------
Line 1 is a header object; every further line is one trajectory::

    {"format": "dpsim-trajectories", "version": 1, "block_size": 64, "source": "..."}
    {"id": "a0", "arrival_s": 0.0, "meta": {...},
     "turns": [{"append": 1200, "out": 150},
               {"append": 300, "out": 90, "think_s": 2.5},
               {"in": 4000, "cached": 1024, "out": 12, "think_s": 0.4}]}

A turn gives its prompt in one of two ways:

* ``append``: the agentic form. The prompt is everything before it (the previous turn's ``in`` +
  ``out``, all cached) plus ``append`` new tokens: ``in = ctx + append``, ``cached = ctx``.
* ``in`` (+ ``cached``): the explicit form, for traces whose context is not a pure append (compaction,
  partial hits). ``cached`` defaults to the hits computed from ``hashes`` when those are present,
  else to 0.

``out`` (tokens generated, >= 1) is required; ``think_s`` (tool / user latency before the turn,
seconds, >= 0) defaults to 0; ``hashes`` (optional, explicit form only) lists the prefix-block hashes
of the prompt, ``block_size`` tokens each (from the header): a block already seen earlier in the same
trajectory (header ``hash_scope: "trajectory"``, the default) or anywhere earlier in the file
(``hash_scope: "global"``) is a hit, and so is its whole prefix. ``arrival_s`` (seconds, or null /
absent: the workload's arrival process decides) and ``meta`` (any JSON object) are optional.

The writer uses the ``append`` form whenever a turn is a pure append and the explicit form otherwise,
so writing and reading back is lossless for every :class:`Turn`.

Parquet (`.parquet`)
--------------------
One row per turn, in trajectory order: ``traj`` (string id), ``turn`` (index from 0),
``input_tokens``, ``cached_tokens``, ``output_tokens`` (int64), ``think_time_s`` (float64),
``arrival_s`` (float64, null when absent; repeated on every row of a trajectory) and ``meta`` (JSON
string on a trajectory's first row, null elsewhere). The schema metadata key ``dpsim`` holds the
header object.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from dpsim.workload.errors import TraceError, describe, numbered_lines
from dpsim.workload.readers._common import prefix_hits
from dpsim.workload.trajectory import Trajectory, Turn

__all__ = ["TraceError"]  # re-exported: readers and the CLIs import it from here

FORMAT_NAME = "dpsim-trajectories"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

_TURN_KEYS = {"append", "in", "cached", "out", "think_s", "hashes"}
_TRAJ_KEYS = {"id", "arrival_s", "meta", "turns"}


def parse_json_line(line: str, where: str):
    """One JSON Lines record; a located TraceError ("file:line: invalid JSON ...") if it is not JSON
    (NaN and Infinity are not JSON either; nesting deeper than Python's stack is refused)."""
    try:
        return json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise TraceError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise TraceError(f"{where}: JSON nested too deeply") from None
    except ValueError as e:
        raise TraceError(f"{where}: invalid JSON ({e})") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def header(**extra) -> dict:
    """The header object of a native file (``extra`` keys are kept, e.g. ``source``)."""
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **extra}


# ----------------------------------------------------------------------------------------- write


def turn_to_obj(turn: Turn, context: int) -> dict:
    """One turn as a JSON object; ``context`` = previous turn's input + output (0 for the first)."""
    if turn.cached_tokens == context and turn.input_tokens >= context:
        obj: dict = {"append": turn.input_tokens - context, "out": turn.output_tokens}
    else:
        obj = {"in": turn.input_tokens, "cached": turn.cached_tokens, "out": turn.output_tokens}
    if turn.think_time_s:
        obj["think_s"] = turn.think_time_s
    return obj


def trajectory_to_obj(traj: Trajectory) -> dict:
    turns, context = [], 0
    for turn in traj.turns:
        turns.append(turn_to_obj(turn, context))
        context = turn.input_tokens + turn.output_tokens
    obj: dict = {"id": traj.id}
    if traj.arrival_s is not None:
        obj["arrival_s"] = traj.arrival_s
    if traj.meta:
        obj["meta"] = traj.meta
    obj["turns"] = turns
    return obj


def _open_write(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def write_jsonl(trajs: Iterable[Trajectory], path: str | Path, **header_extra) -> int:
    """Write trajectories as native JSON Lines (gzip when the name ends in .gz); returns the count."""
    path = Path(path)
    n = 0
    with _open_write(path) as f:
        f.write(json.dumps(header(**header_extra), separators=(",", ":")) + "\n")
        for traj in trajs:
            f.write(json.dumps(trajectory_to_obj(traj), separators=(",", ":")) + "\n")
            n += 1
    return n


def write_parquet(trajs: Iterable[Trajectory], path: str | Path, **header_extra) -> int:
    """Write trajectories as native Parquet (one row per turn); returns the trajectory count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list] = {k: [] for k in ("traj", "turn", "input_tokens", "cached_tokens",
                                             "output_tokens", "think_time_s", "arrival_s", "meta")}
    n = 0
    for traj in trajs:
        n += 1
        for i, turn in enumerate(traj.turns):
            cols["traj"].append(traj.id)
            cols["turn"].append(i)
            cols["input_tokens"].append(turn.input_tokens)
            cols["cached_tokens"].append(turn.cached_tokens)
            cols["output_tokens"].append(turn.output_tokens)
            cols["think_time_s"].append(float(turn.think_time_s))
            cols["arrival_s"].append(traj.arrival_s)
            cols["meta"].append(json.dumps(traj.meta) if i == 0 and traj.meta else None)
    schema = pa.schema([
        ("traj", pa.string()), ("turn", pa.int32()), ("input_tokens", pa.int64()),
        ("cached_tokens", pa.int64()), ("output_tokens", pa.int64()), ("think_time_s", pa.float64()),
        ("arrival_s", pa.float64()), ("meta", pa.string()),
    ], metadata={"dpsim": json.dumps(header(**header_extra))})
    table = pa.table(cols, schema=schema)
    pq.write_table(table, str(path), compression="zstd")
    return n


def write_trajectories(trajs: Iterable[Trajectory], path: str | Path, **header_extra) -> int:
    """Write by file name: ``.parquet`` -> Parquet, anything else -> JSON Lines (``.gz``: gzip)."""
    if str(path).endswith(".parquet"):
        return write_parquet(trajs, path, **header_extra)
    return write_jsonl(trajs, path, **header_extra)


# ------------------------------------------------------------------------------------------ read


def _int(obj: dict, key: str, where: str, minimum: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TraceError(f"{where}: '{key}' must be an integer, got {value!r}")
    if value < minimum:
        raise TraceError(f"{where}: '{key}' must be >= {minimum}, got {value}")
    return value


def _number(value, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TraceError(f"{where}: '{key}' must be a number, got {value!r}")
    if value != value or value < 0 or value == float("inf"):
        raise TraceError(f"{where}: '{key}' must be finite and >= 0, got {value}")
    return float(value)


def check_header(obj: dict, where: str) -> dict:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise TraceError(f"{where}: not a {FORMAT_NAME} header: {str(obj)[:200]}")
    version = obj.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise TraceError(f"{where}: {FORMAT_NAME} version {version!r} is not supported "
                         f"(this dpsim reads versions {list(SUPPORTED_VERSIONS)})")
    if obj.get("hash_scope", "trajectory") not in ("trajectory", "global"):
        raise TraceError(f"{where}: hash_scope must be 'trajectory' or 'global', got {obj['hash_scope']!r}")
    block = obj.get("block_size")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise TraceError(f"{where}: block_size must be a positive integer, got {block!r}")
    return obj


def obj_to_trajectory(obj, where: str, hdr: dict, global_seen: set | None = None) -> Trajectory:
    """Parse one trajectory object (raises TraceError naming ``where``)."""
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: a trajectory must be a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - _TRAJ_KEYS
    if unknown:
        raise TraceError(f"{where}: unknown trajectory keys {sorted(unknown)}")
    traj_id = obj.get("id")
    if not isinstance(traj_id, (str, int)) or isinstance(traj_id, bool):
        raise TraceError(f"{where}: 'id' must be a string, got {traj_id!r}")
    arrival = obj.get("arrival_s")
    if arrival is not None:
        arrival = _number(arrival, "arrival_s", where)
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise TraceError(f"{where}: 'meta' must be an object")
    raw_turns = obj.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise TraceError(f"{where}: 'turns' must be a non-empty list")
    block = hdr.get("block_size")
    seen = global_seen if global_seen is not None else set()
    turns, context = [], 0
    for i, t in enumerate(raw_turns):
        tw = f"{where}: turn {i}"
        if not isinstance(t, dict):
            raise TraceError(f"{tw}: must be an object")
        unknown = set(t) - _TURN_KEYS
        if unknown:
            raise TraceError(f"{tw}: unknown keys {sorted(unknown)}")
        out = _int(t, "out", tw, 1)
        think = _number(t.get("think_s", 0.0), "think_s", tw)
        if "append" in t:
            if "in" in t or "cached" in t:
                raise TraceError(f"{tw}: give either 'append' or 'in'/'cached', not both")
            append = _int(t, "append", tw, 0)
            inp, cached = context + append, context
            if inp < 1:
                raise TraceError(f"{tw}: the first turn needs 'append' >= 1")
        elif "in" in t:
            inp = _int(t, "in", tw, 1)
            hashes = t.get("hashes")
            if hashes is not None:
                if not isinstance(hashes, list) or not all(isinstance(h, (int, str)) for h in hashes):
                    raise TraceError(f"{tw}: 'hashes' must be a list of block ids (integers or strings)")
                if not block:
                    raise TraceError(f"{tw}: 'hashes' needs 'block_size' in the header")
                if len(hashes) > -(-inp // block):
                    raise TraceError(f"{tw}: {len(hashes)} hashes for {inp} tokens of {block}-token blocks")
                k = prefix_hits(hashes, seen)
                seen.update(hashes[k:])
            if "cached" in t:
                cached = _int(t, "cached", tw, 0)
            elif hashes is not None:
                cached = min(k * block, inp)
            else:
                cached = 0
            if cached > inp:
                raise TraceError(f"{tw}: 'cached' ({cached}) exceeds 'in' ({inp})")
        else:
            raise TraceError(f"{tw}: needs 'append' or 'in'")
        turns.append(Turn(inp, cached, out, think))
        context = inp + out
    return Trajectory(str(traj_id), turns, arrival, dict(meta))


def _open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_jsonl(path: str | Path, ctx=None) -> Iterator[Trajectory]:
    """Trajectories of a native JSON Lines file. ``ctx`` (a readers.ReadContext) decides whether
    bad lines raise or are counted and skipped."""
    path = Path(path)
    hdr = None
    global_seen: set | None = None
    for lineno, line in numbered_lines(path, lambda: _open_binary(path)):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = parse_json_line(line, where)
            if hdr is None:
                if isinstance(obj, dict) and "format" in obj:
                    hdr = check_header(obj, where)
                    global_seen = set() if hdr.get("hash_scope") == "global" else None
                    continue
                raise TraceError(f"{where}: missing the {FORMAT_NAME} header line")
            traj = obj_to_trajectory(obj, where, hdr, global_seen)
        except TraceError as e:
            if hdr is None or ctx is None or not ctx.skip_bad:
                raise
            ctx.skip(str(e))
            continue
        except Exception as e:  # Turn's own invariants (ValueError), anything a record can break
            if ctx is None or not ctx.skip_bad or hdr is None:
                raise TraceError(f"{where}: {describe(e)}") from None
            ctx.skip(f"{where}: {describe(e)}")
            continue
        yield traj
    if hdr is None:
        raise TraceError(f"{path}: empty file (no {FORMAT_NAME} header)")


def iter_parquet(path: str | Path, ctx=None) -> Iterator[Trajectory]:
    """Trajectories of a native Parquet file."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise TraceError(f"{path}: not a readable Parquet file ({e})") from None
    md = pf.schema_arrow.metadata or {}
    if b"dpsim" not in md:
        raise TraceError(f"{path}: Parquet file without dpsim metadata (not written by dpsim)")
    try:
        check_header(json.loads(md[b"dpsim"]), str(path))
    except (ValueError, RecursionError) as e:  # TraceError is a ValueError too
        raise TraceError(f"{path}: dpsim metadata: {e if isinstance(e, TraceError) else describe(e)}") from None
    need = ["traj", "turn", "input_tokens", "cached_tokens", "output_tokens", "think_time_s", "arrival_s", "meta"]
    missing = [c for c in need if c not in pf.schema_arrow.names]
    if missing:
        raise TraceError(f"{path}: missing columns {missing}")
    try:
        cols = pf.read(columns=need).to_pydict()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types
        raise TraceError(f"{path}: not a readable Parquet file ({describe(e)})") from None
    nrows = len(cols["traj"])
    turns: list = []
    meta: dict = {}
    cur_id, arrival, bad, first_row = None, None, None, 0

    def flush():
        if cur_id is None:
            return None
        if bad is not None:
            if ctx is None or not ctx.skip_bad:
                raise TraceError(bad)
            ctx.skip(bad)
            return None
        return Trajectory(cur_id, turns, arrival, meta)

    for r in range(nrows):
        tid = cols["traj"][r]
        if tid != cur_id:
            traj = flush()
            if traj is not None:
                yield traj
            cur_id, turns, arrival, meta, bad, first_row = tid, [], cols["arrival_s"][r], {}, None, r
            try:
                meta = _parquet_meta(cols["meta"][r])
                if arrival is not None:
                    arrival = _number(arrival, "arrival_s", "")
            except (TraceError, ValueError, TypeError, RecursionError) as e:
                bad = f"{path}: row {r} (trajectory {tid}): {describe(e)}"
        if bad is not None:
            continue
        try:
            if cols["turn"][r] != r - first_row:
                raise ValueError(f"turn index {cols['turn'][r]} out of order")
            turns.append(Turn(int(cols["input_tokens"][r]), int(cols["cached_tokens"][r]),
                              int(cols["output_tokens"][r]), _number(cols["think_time_s"][r], "think_time_s", "")))
        except (TypeError, ValueError) as e:
            bad = f"{path}: row {r} (trajectory {tid}): {describe(e)}"
    traj = flush()
    if traj is not None:
        yield traj
    if nrows == 0:
        raise TraceError(f"{path}: empty Parquet file (no turns)")


def _parquet_meta(text: str | None) -> dict:
    meta = json.loads(text, parse_constant=_no_constant) if text else {}
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a JSON object, got {type(meta).__name__}")
    return meta


def read_jsonl(path: str | Path) -> list[Trajectory]:
    return list(iter_jsonl(path))


def read_parquet(path: str | Path) -> list[Trajectory]:
    return list(iter_parquet(path))
