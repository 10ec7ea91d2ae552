"""Azure LLM inference trace 2023 (Splitwise): CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``.

Arrival times and lengths only: every request becomes a one-turn trajectory with no cached tokens
(no sessions, no prefix hashes), ``arrival_s`` = seconds since the first request of the file.
Timestamps are ``YYYY-MM-DD HH:MM:SS.fffffff`` (7 fractional digits; beyond microseconds dropped) or a
plain number of seconds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dpsim.workload.errors import FILE_ERRORS, TraceError, describe
from dpsim.workload.readers._common import ReadContext
from dpsim.workload.trajectory import Trajectory, Turn

COLUMNS = ("timestamp", "contexttokens", "generatedtokens")


def looks_like(first_line: str) -> bool:
    cols = [c.strip().lower() for c in first_line.strip().split(",")]
    return all(c in cols for c in COLUMNS)


def _time(text: str, where: str) -> float:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            date, _, frac = text.partition(".")
            base = datetime.fromisoformat(date)
            seconds = base.timestamp() + (float("0." + frac) if frac else 0.0)
        except (ValueError, OverflowError, OSError):
            raise TraceError(f"{where}: bad TIMESTAMP {text!r}") from None
    if not math.isfinite(seconds):
        raise TraceError(f"{where}: bad TIMESTAMP {text!r} (not a finite time)")
    return seconds


def _count(text: str, name: str, where: str, minimum: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise TraceError(f"{where}: {name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise TraceError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def iter_azure(path: str | Path, ctx: ReadContext | None = None) -> Iterator[Trajectory]:
    ctx = ctx or ReadContext()
    path = Path(path)
    rows = _read_rows(path, ctx)
    if not rows:
        if ctx.skipped:
            return
        raise TraceError(f"{path}: no requests after the header")
    t0 = min(r[0] for r in rows)
    zero = 0
    for i, (t, lineno, inp, out) in enumerate(rows):
        zero += out == 0
        yield Trajectory(f"r{i}", [Turn(inp, 0, max(out, 1))], t - t0, {"source": "azure", "line": lineno})
    if zero:
        ctx.counts["requests with GeneratedTokens=0 replayed as 1 generated token"] += zero


def _read_rows(path: Path, ctx: ReadContext) -> list[tuple[float, int, int, int]]:
    """(time, line, context tokens, generated tokens) per good request."""
    rows = []
    lineno = 1
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if head is None:
                raise TraceError(f"{path}: empty file")
            cols = [c.strip().lower() for c in head]
            if not all(c in cols for c in COLUMNS):
                raise TraceError(f"{path}:1: header must have TIMESTAMP,ContextTokens,GeneratedTokens, got {head}")
            it, ic, ig = (cols.index(c) for c in COLUMNS)
            for row in reader:
                lineno = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                where = f"{path}:{lineno}"
                try:
                    if len(row) != len(cols):
                        raise TraceError(f"{where}: {len(row)} fields, expected {len(cols)}")
                    rows.append((_time(row[it], where), lineno, _count(row[ic], "ContextTokens", where, 1),
                                 _count(row[ig], "GeneratedTokens", where, 0)))
                except TraceError as e:
                    if not ctx.skip_bad:
                        raise
                    ctx.skip(str(e))
    except FILE_ERRORS + (csv.Error,) as e:
        raise TraceError(f"{path}:{lineno + 1}: {describe(e)}") from None
    return rows
