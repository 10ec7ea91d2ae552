"""dpsim's own trajectory files (see :mod:`dpsim.workload.format`): JSON Lines, gzip JSON Lines, Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dpsim.workload import format as fmt
from dpsim.workload.readers._common import ReadContext
from dpsim.workload.trajectory import Trajectory


def iter_native(path: str | Path, ctx: ReadContext | None = None) -> Iterator[Trajectory]:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return fmt.iter_parquet(path, ctx)
    return fmt.iter_jsonl(path, ctx)
