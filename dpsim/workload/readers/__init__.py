"""Trace readers: every supported trace file becomes a list of :class:`Trajectory`.

One entry point, :func:`read_trace` (or :func:`load_trace` for the skip report), detects the format
from the file's content, not its name:

=================  ==========================================================================
``native``         dpsim JSON Lines (header line ``{"format": "dpsim-trajectories", ...}``),
                   gzip-compressed JSON Lines, or dpsim Parquet (:mod:`dpsim.workload.format`)
``mooncake``       Mooncake FAST'25 JSON Lines (``timestamp, input_length, output_length, hash_ids``)
``claude_code``    kv-cache-tester Claude Code sessions: a tar archive (.tar.xz/.gz) of session
                   JSON files, a directory of them, or one session file
``azure``          Azure LLM inference CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``)
=================  ==========================================================================

A malformed record raises :class:`TraceError` naming the file and line (or archive member), and
so does anything else that goes wrong while reading (not UTF-8, a corrupt gzip or tar stream, a
directory, JSON nested too deeply): no reader raises another exception. With
``skip_bad=True`` it is skipped and counted instead (``TraceRead.skipped``; :func:`read_trace` warns
with the count). An empty file, a file in no known format, or a file whose every record is bad is
always an error.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import warnings
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from dpsim.workload.errors import describe
from dpsim.workload.format import FORMAT_NAME, TraceError
from dpsim.workload.readers import azure, claude_code, mooncake, native
from dpsim.workload.readers._common import ReadContext, prefix_hits
from dpsim.workload.trajectory import Trajectory
from dpsim.workload.transform import apply_workload_options

FORMATS = ("native", "mooncake", "claude_code", "azure")

__all__ = ["FORMATS", "ReadContext", "TraceError", "TraceRead", "apply_workload_options", "detect_format",
           "load_trace", "prefix_hits", "read_trace"]


@dataclass
class TraceRead:
    """The trajectories of a trace file and what reading it involved."""

    path: str
    format: str
    trajectories: list[Trajectory]
    skipped: list[str] = field(default_factory=list)  # one message per skipped record
    notes: list[str] = field(default_factory=list)  # adjustments the reader made, with counts


def _classify_line(line: str):
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict):
        if obj.get("format") == FORMAT_NAME or "turns" in obj:
            return "native"
        if mooncake.looks_like(obj):
            return "mooncake"
        if claude_code.looks_like(obj):
            return "claude_code"
    return False  # valid JSON, unknown shape


def detect_format(path: str | Path) -> str:
    """The format of a trace file, from its content (raises TraceError if none fits)."""
    path = Path(path)
    try:
        return _detect(path)
    except TraceError:
        raise
    except Exception as exc:  # an unreadable file or a broken archive: still one located line
        raise TraceError(f"{path}: {describe(exc)}") from None


def _detect(path: Path) -> str:
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    if path.is_dir():
        if any(path.rglob("*.json")):
            return "claude_code"
        raise TraceError(f"{path}: a directory without *.json session files is not a trace")
    with open(path, "rb") as f:
        magic = f.read(6)
    if not magic:
        raise TraceError(f"{path}: empty file")
    if magic[:4] == b"PAR1":
        return "native"
    if magic[:2] in (b"\x1f\x8b",) or magic[:6] == b"\xfd7zXZ\x00" or magic[:3] == b"BZh" or tarfile.is_tarfile(path):
        if tarfile.is_tarfile(path):
            return "claude_code"
        if magic[:2] == b"\x1f\x8b":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                if _classify_line(f.readline()) == "native":
                    return "native"
        raise TraceError(f"{path}: compressed file that is neither a tar archive of sessions nor gzip dpsim JSON Lines")
    with open(path, encoding="utf-8", errors="replace") as f:
        first = None
        for i, line in enumerate(f):
            if i >= 50:
                break
            if not line.strip():
                continue
            if first is None:
                first = line
                if azure.looks_like(line):
                    return "azure"
            kind = _classify_line(line)
            if kind:
                return kind
            if kind is False:
                break
    if first is None:
        raise TraceError(f"{path}: empty file")
    if first.lstrip().startswith("{"):  # a pretty-printed session file
        try:
            with open(path, encoding="utf-8") as f:
                if claude_code.looks_like(json.load(f)):
                    return "claude_code"
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    raise TraceError(f"{path}: not a recognised trace (expected one of {', '.join(FORMATS)}); "
                     f"first line: {first[:80]!r}")


def _iterator(path: Path, fmt: str, ctx: ReadContext, options: dict):
    if fmt == "native":
        return native.iter_native(path, ctx)
    if fmt == "mooncake":
        return mooncake.iter_mooncake(path, ctx, **options)
    if fmt == "claude_code":
        return claude_code.iter_claude_code(path, ctx, **options)
    if fmt == "azure":
        return azure.iter_azure(path, ctx)
    raise TraceError(f"unknown trace format {fmt!r} (known: {', '.join(FORMATS)})")


def load_trace(path: str | Path, skip_bad: bool = False, format: str | None = None,
               limit: int | None = None, **options) -> TraceRead:
    """Read a trace file; returns its trajectories with the skip report.

    ``format`` forces a reader instead of detection; ``limit`` stops after that many trajectories;
    ``options`` go to the reader (``block`` for mooncake, ``subagents`` for claude_code).
    """
    path = Path(path)
    fmt = format or detect_format(path)
    ctx = ReadContext(skip_bad=skip_bad)
    try:
        it = _iterator(path, fmt, ctx, options)
        trajs = list(islice(it, limit) if limit is not None else it)
    except TraceError:
        raise
    except Exception as exc:  # the readers locate what they can; this names the file for the rest
        raise TraceError(f"{path}: cannot read as a {fmt} trace ({describe(exc)})") from None
    if not trajs:
        first = f"; first: {ctx.skipped[0]}" if ctx.skipped else ""
        raise TraceError(f"{path}: no valid trajectories ({len(ctx.skipped)} bad records skipped{first})")
    notes = list(ctx.notes) + [f"{n} {what}" for what, n in ctx.counts.items()]
    return TraceRead(str(path), fmt, trajs, ctx.skipped, notes)


def read_trace(path: str | Path, skip_bad: bool = False, format: str | None = None, **options) -> list[Trajectory]:
    """Trajectories of a trace file in any supported format (detected from its content).

    Raises TraceError (file and line in the message) on bad input; with ``skip_bad`` bad records
    are skipped and a warning says how many.
    """
    result = load_trace(path, skip_bad=skip_bad, format=format, **options)
    if result.skipped:
        warnings.warn(f"{path}: skipped {len(result.skipped)} bad records (first: {result.skipped[0]})",
                      stacklevel=2)
    return result.trajectories
