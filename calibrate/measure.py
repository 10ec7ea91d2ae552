"""Measurement discipline shared by every benchmark: size plans, warm-up, repetitions, the raw-sample
log (JSONL, appended as samples are taken so an interrupted run loses nothing and can be resumed),
and perftest-like summary tables.

A *sample* is one JSON object per line. Common fields:

``kind``       "transport" | "storage" | "gpu" | "loader" | "priority" | "experiment" | "meta"
``link``       what was measured (e.g. "compute", "storage", "h2d")
``op``         "read" | "write" | "h2d" | ...
``size``       bytes per message (request, block, copy)
``count``      messages in this sample (1 for a latency sample)
``depth``      outstanding messages per stream (queue depth)
``concurrency`` parallel streams
``elapsed_s``  wall time of the sample, seconds
``bytes``      bytes moved by the sample (size * count * concurrency)
``rep``        repetition index within the plan
``t``          time.time() when the sample finished (drift checks)
``config``     key of the measured configuration (used by ``--resume``)
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpsim.scenario.units import parse_bytes

from .errors import CalibrateError
from .samples import check_record


# ----------------------------------------------------------------------------------------- plans
def log_sizes(lo: int | str, hi: int | str, per_octave: int = 2, align: int = 1) -> list[int]:
    """Log-spaced sizes from lo to hi inclusive, ``per_octave`` per doubling (2 -> 2^(k/2) steps),
    rounded to a multiple of ``align``. Not only powers of two, so protocol breakpoints are not
    aliased onto the plan."""
    lo_b, hi_b = int(parse_bytes(lo)), int(parse_bytes(hi))
    if lo_b <= 0 or hi_b < lo_b:
        raise CalibrateError(f"bad size range {lo}..{hi}")
    steps = max(0, round(math.log2(hi_b / lo_b) * per_octave))
    out: list[int] = []
    for k in range(steps + 1):
        size = lo_b * 2 ** (k / per_octave)
        size = max(align, int(round(size / align)) * align)
        if not out or size != out[-1]:
            out.append(size)
    return out


def parse_size_list(text: str, align: int = 1) -> list[int]:
    """"4KiB..4MiB" (log-spaced, 2 per octave), "4KiB..4MiB/4" (4 per octave) or "4KiB,1MiB"."""
    text = text.strip()
    if ".." in text:
        rng, _, per = text.partition("/")
        lo, hi = rng.split("..", 1)
        return log_sizes(lo, hi, int(per) if per else 2, align)
    sizes = [int(parse_bytes(part)) for part in text.split(",") if part.strip()]
    return [max(align, (s // align) * align) for s in sizes]


@dataclass(frozen=True)
class PlanItem:
    size: int
    rep: int
    depth: int = 1
    concurrency: int = 1

    def key(self, config: str) -> tuple:
        return (config, self.size, self.rep, self.depth, self.concurrency)


def make_plan(
    sizes: Iterable[int], reps: int, seed: int, depths: Iterable[int] = (1,), concurrencies: Iterable[int] = (1,)
) -> list[PlanItem]:
    """Full factorial plan (sizes x depths x concurrencies x repetitions), shuffled with a recorded
    seed so that drift shows up as noise rather than as a fake size effect."""
    plan = [
        PlanItem(int(s), r, int(d), int(c))
        for s in sizes
        for d in depths
        for c in concurrencies
        for r in range(reps)
    ]
    random.Random(seed).shuffle(plan)
    return plan


# ------------------------------------------------------------------------------------ provenance
def provenance(**extra: Any) -> dict:
    """Host, date and tool versions, recorded in every raw file's meta line and in the profile."""
    import calibrate

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "calibrate": calibrate.__version__,
        "cpus": os.cpu_count(),
    }
    info.update({k: v for k, v in extra.items() if v is not None})
    return info


# -------------------------------------------------------------------------------------- raw log
class SampleLog:
    """Append-only JSONL of raw samples. Each line is flushed when written; ``done_keys`` lets a
    ``--resume`` run skip what an interrupted run already measured."""

    def __init__(self, path: str | Path | None, resume: bool = False):
        self.path = Path(path) if path else None
        self._fh = None
        self._done: set[tuple] = set()
        self.samples: list[dict] = []
        if self.path is None:
            return
        if self.path.exists() and not resume and self.path.stat().st_size > 0:
            raise CalibrateError(f"{self.path} exists; pass --resume to continue it or choose another file")
        if resume and self.path.exists():
            for rec in read_samples([self.path]):
                self.samples.append(rec)
                if "config" in rec and "size" in rec:
                    self._done.add(
                        (rec["config"], rec["size"], rec.get("rep", 0), rec.get("depth", 1), rec.get("concurrency", 1))
                    )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def done(self, item: PlanItem, config: str) -> bool:
        return item.key(config) in self._done

    def write(self, record: dict) -> dict:
        record = dict(record)
        record.setdefault("t", time.time())
        self.samples.append(record)
        if self._fh is not None:
            self._fh.write(json.dumps(record, sort_keys=True) + "\n")
            self._fh.flush()
        if "config" in record and "size" in record:
            self._done.add(
                (record["config"], record["size"], record.get("rep", 0), record.get("depth", 1), record.get("concurrency", 1))
            )
        return record

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_samples(paths: Iterable[str | Path]) -> list[dict]:
    """All records of one or more JSONL files; a truncated last line (interrupted write) is skipped.
    Every record is checked against the raw-sample schema (``calibrate.samples``); anything unreadable
    raises one located CalibrateError (file, line, field)."""
    out: list[dict] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise CalibrateError(f"raw sample file {path} not found")
        if not path.is_file():
            raise CalibrateError(f"{path}: not a file (expected a JSON Lines raw sample file)")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CalibrateError(f"{path}: cannot read ({e.strerror or e})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            bad_line = data[:e.start].count(b"\n") + 1
            raise CalibrateError(f"{path}:{bad_line}: not UTF-8 text (expected JSON Lines raw samples)") from None
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            where = f"{path}:{i + 1}"
            try:
                record = json.loads(line, parse_constant=_no_constant)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    continue  # interrupted mid-line
                raise CalibrateError(f"{where}: not a JSON record") from None
            except RecursionError:
                raise CalibrateError(f"{where}: JSON nested too deeply") from None
            except ValueError as e:  # NaN / Infinity
                raise CalibrateError(f"{where}: {e}") from None
            out.append(check_record(record, where))
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a measured value (JSON has no NaN or Infinity)")


def run_plan(
    plan: list[PlanItem],
    measure: Callable[[PlanItem], dict],
    log: SampleLog,
    config: str,
    base: dict,
    warmup: int = 3,
    warmup_fn: Callable[[PlanItem], Any] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Run a shuffled plan: ``warmup`` discarded calls first, then one measurement per plan item not
    already in the log. ``measure(item)`` returns at least ``elapsed_s`` (and ``count``/``bytes``)."""
    todo = [item for item in plan if not log.done(item, config)]
    if todo and warmup:
        fn = warmup_fn or measure
        for i in range(warmup):
            fn(todo[i % len(todo)])
    out = []
    iterator: Iterable[PlanItem] = todo
    if progress:
        from tqdm import tqdm

        iterator = tqdm(todo, desc=config, unit="sample")
    for item in iterator:
        rec = dict(base)
        rec.update(size=item.size, rep=item.rep, depth=item.depth, concurrency=item.concurrency, config=config)
        rec.update(measure(item))
        rec.setdefault("count", 1)
        rec.setdefault("bytes", item.size * rec["count"] * item.concurrency)
        out.append(log.write(rec))
    return out


# -------------------------------------------------------------------------------------- tables
def summarise(samples: list[dict]) -> list[dict]:
    """perftest-like rows per (link, op, size, depth, concurrency): bytes, iterations, peak and
    average bandwidth (bytes/s), message rate (messages/s), per-message latency percentiles (s)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in samples:
        if "elapsed_s" not in rec or "size" not in rec:
            continue
        key = (rec.get("kind"), rec.get("link"), rec.get("op"), rec["size"], rec.get("depth", 1), rec.get("concurrency", 1))
        groups[key].append(rec)
    rows = []
    for (kind, link, op, size, depth, conc), recs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0][:3]) + kv[0][3:]):
        elapsed = np.array([r["elapsed_s"] for r in recs], dtype=float)
        nbytes = np.array([r.get("bytes", size) for r in recs], dtype=float)
        counts = np.array([r.get("count", 1) * r.get("concurrency", 1) for r in recs], dtype=float)
        per_msg = elapsed / np.maximum(1, np.array([r.get("count", 1) for r in recs], dtype=float))
        bw = nbytes / elapsed
        rows.append(
            {
                "kind": kind,
                "link": link,
                "op": op,
                "bytes": int(size),
                "depth": int(depth),
                "concurrency": int(conc),
                "iterations": int(counts.sum()),
                "samples": len(recs),
                "bw_peak": float(bw.max()),
                "bw_average": float(nbytes.sum() / elapsed.sum()),
                "msg_rate": float(counts.sum() / elapsed.sum()),
                "t_p50": float(np.median(per_msg)),
                "t_p99": float(np.percentile(per_msg, 99)),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """Text table with perftest's columns (bandwidth in MB/s = 1e6 B/s, latency in us)."""
    head = (
        f"{'link':<10}{'op':<6}{'#bytes':>11}{'depth':>6}{'conc':>5}{'#iters':>8}"
        f"{'BW peak[MB/s]':>15}{'BW avg[MB/s]':>14}{'MsgRate[Mpps]':>15}{'t_p50[us]':>11}{'t_p99[us]':>11}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{str(r['link']):<10}{str(r['op']):<6}{r['bytes']:>11}{r['depth']:>6}{r['concurrency']:>5}{r['iterations']:>8}"
            f"{r['bw_peak'] / 1e6:>15.2f}{r['bw_average'] / 1e6:>14.2f}{r['msg_rate'] / 1e6:>15.6f}"
            f"{r['t_p50'] * 1e6:>11.1f}{r['t_p99'] * 1e6:>11.1f}"
        )
    return "\n".join(lines)


@dataclass
class Timer:
    """perf_counter-based stopwatch."""

    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def timed_threads(n: int, body: Callable[[int], None]) -> float:
    """Run body(0..n-1) on n threads released together; seconds from release to the last one's end.
    The first exception raised by any thread is re-raised."""
    start = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        start.wait()
        try:
            body(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    off = 0
    while off < total:
        n = min(size, total - off)
        yield off, n
        off += n
