"""Storage as an endpoint: ``file:DIR[?reader=odirect|posix|usrbio]`` makes the block files of a
local directory (a 3FS FUSE mount on a cluster) look like a peer's regions, so the loader's PE and
DE paths read storage directly with a storage reader instead of through a ``serve`` process.

READs run synchronously when posted (the reader's own threads or io ring give the queue depth) and
complete in posting order; WRITE is not supported.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from ..errors import CalibrateError
from ..storage import ALIGN, aligned_buffer, open_reader
from .base import Completion, Endpoint, RemoteRegion


def is_file_address(address: str | None) -> bool:
    return bool(address) and address.startswith("file:")


class FileEndpoint(Endpoint):
    def __init__(self, address: str):
        u = urlparse(address)
        directory = Path(u.path or u.netloc)
        reader = parse_qs(u.query).get("reader", ["odirect"])[0]
        prefix = parse_qs(u.query).get("prefix", [""])[0]
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.startswith(prefix)) \
            if directory.is_dir() else []
        if not files:
            raise CalibrateError(f"{address}: no block files in {directory}")
        self.reader = open_reader(reader, files)
        self.index = {p.name: i for i, p in enumerate(files)}
        self.remote_regions = {p.name: RemoteRegion(p.name, i, sz) for i, (p, sz) in
                               enumerate(zip(files, self.reader.sizes))}
        self._done: deque[Completion] = deque()
        self._ids = itertools.count(1)
        self._bounce: Any = None  # an aligned mmap, grown on demand

    @property
    def outstanding(self) -> int:
        return len(self._done)

    def post_read(self, local, local_off, remote, remote_off, length, wr_id=None) -> int:
        wr_id = next(self._ids) if wr_id is None else wr_id
        t = time.perf_counter()
        n = -(-length // ALIGN) * ALIGN if self.reader.direct else length
        if self.reader.direct and remote_off % ALIGN:
            raise CalibrateError("direct storage reads need 4 KiB aligned offsets")
        if self._bounce is None or len(self._bounce) < n:
            self._bounce = aligned_buffer(n)
        self.reader.read_into(self.index[remote.name], remote_off, min(n, remote.length - remote_off), self._bounce)
        local.buf[local_off : local_off + length] = memoryview(self._bounce)[:length]
        self._done.append(Completion(wr_id, "read", length, 0, t, time.perf_counter()))
        return wr_id

    def post_write(self, *a, **k) -> int:
        raise CalibrateError("file: storage endpoints are read-only")

    def poll(self, max_n: int = 64) -> list[Completion]:
        out: list = []
        while self._done and len(out) < max_n:
            out.append(self._done.popleft())
        return out

    def wait(self, n: int = 1) -> list[Completion]:
        if len(self._done) < n:
            raise CalibrateError("wait() with nothing outstanding")
        return self.poll(n)

    def close(self) -> None:
        self.reader.close()


def connect_storage(address: str, transport, **opts) -> Endpoint:
    """A storage endpoint: ``file:DIR`` (local reader) or a ``serve --files`` peer over the transport."""
    if is_file_address(address):
        return FileEndpoint(address)
    return transport.connect(address, **opts)
