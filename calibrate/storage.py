"""Storage readers and the storage sweep.

Readers (all read whole Full Blocks, the unit of storage I/O in DualPath):

* ``posix``   buffered ``os.preadv`` (a 3FS FUSE mount or local disk, through the page cache);
* ``odirect`` ``O_DIRECT`` reads into page-aligned (mmap) buffers, offsets and lengths aligned to
  4 KiB; what 3FS FUSE and a local NVMe deliver without the page cache;
* ``usrbio``  the 3FS native client (``hf3fs_fuse.io``: shared-memory iovec + io ring), only when
  that binding is importable (it is built on the cluster; see docs/calibration.md).

Queue depth is the number of reads in flight per client: ``posix``/``odirect`` keep it with a pool
of threads (``preadv`` releases the GIL), ``usrbio`` by preparing that many I/Os per ring submit.

Block files are laid out like the paper's Full Blocks: ``layers x block_tokens x kv_bytes_per_token_layer``
bytes each, consecutive in a file; a file holds ``blocks`` of them.
"""

from __future__ import annotations

import mmap
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CalibrateError, Unavailable, one_line
from .measure import PlanItem, SampleLog, make_plan, run_plan, timed_threads

ALIGN = 4096

# KV bytes per token per layer and layer counts (docs/architecture.md#paper-models).
MODELS = {
    "ds660b": {"layers": 61, "kv_bytes_per_token_layer": 656},
    "ds27b": {"layers": 30, "kv_bytes_per_token_layer": 656},
    "qwen32b": {"layers": 64, "kv_bytes_per_token_layer": 8 * 128 * 2 * 2},  # GQA 8 KV heads x 128, K+V, FP16
}


@dataclass(frozen=True)
class BlockLayout:
    full_block: int  # bytes of one Full Block (all layers)
    layers: int = 1
    block_tokens: int = 64
    model: str | None = None

    @property
    def layer_block(self) -> int:
        return self.full_block // self.layers

    @property
    def aligned_block(self) -> int:
        """Full Block size rounded up to the O_DIRECT alignment (the on-disk stride)."""
        return -(-self.full_block // ALIGN) * ALIGN

    @classmethod
    def for_model(cls, model: str, block_tokens: int = 64) -> BlockLayout:
        key = model.lower().replace("-", "").replace("_", "").replace(".", "")
        if key not in MODELS:
            raise CalibrateError(f"unknown model {model!r} (known: {', '.join(MODELS)})")
        m = MODELS[key]
        return cls(m["layers"] * block_tokens * m["kv_bytes_per_token_layer"], m["layers"], block_tokens, key)

    def describe(self) -> dict:
        return {"full_block": self.full_block, "layer_block": self.layer_block, "layers": self.layers,
                "block_tokens": self.block_tokens, "model": self.model, "stride": self.aligned_block}


def ensure_block_files(directory: str | Path, layout: BlockLayout, blocks: int, nfiles: int,
                       prefix: str = "blocks") -> list[Path]:
    """Create (once) ``nfiles`` files of ``blocks`` Full Blocks each, with non-zero content."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    size = layout.aligned_block * blocks
    out = []
    rnd = random.Random(7)
    chunk = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * 16  # 1 MiB pattern
    for i in range(nfiles):
        p = d / f"{prefix}{i:03d}.kv"
        if not p.exists() or p.stat().st_size != size:
            with open(p, "wb") as fh:
                left = size
                while left:
                    n = min(left, len(chunk))
                    fh.write(chunk[:n])
                    left -= n
        out.append(p)
    return out


def aligned_buffer(size: int) -> mmap.mmap:
    """Page-aligned anonymous memory (O_DIRECT needs aligned user buffers)."""
    return mmap.mmap(-1, -(-size // ALIGN) * ALIGN)


# ------------------------------------------------------------------------------------- readers
class Reader:
    name = "?"
    direct = False

    def __init__(self, files: list[Path]):
        if not files:
            raise CalibrateError("no block files to read")
        self.files = [Path(f) for f in files]
        self.sizes = [f.stat().st_size for f in self.files]

    def read_into(self, file_idx: int, offset: int, length: int, buf) -> int:
        raise NotImplementedError

    def read_many(self, reads: list[tuple[int, int, int]], depth: int, buffers: list | None = None) -> float:
        """Perform ``reads`` [(file, offset, length)] keeping ``depth`` in flight; returns seconds."""
        if depth <= 1:
            buf = buffers[0] if buffers else self.buffer(max(r[2] for r in reads))
            t0 = time.perf_counter()
            for f, off, ln in reads:
                self.read_into(f, off, ln, buf)
            return time.perf_counter() - t0
        maxlen = max(r[2] for r in reads)
        bufs = buffers or [self.buffer(maxlen) for _ in range(depth)]
        nxt = iter(range(len(reads)))
        lock = threading.Lock()

        def worker(i):
            while True:
                with lock:
                    k = next(nxt, None)
                if k is None:
                    return
                f, off, ln = reads[k]
                self.read_into(f, off, ln, bufs[i])

        return timed_threads(depth, worker)

    def buffer(self, size: int):
        return aligned_buffer(size)

    def versions(self) -> dict:
        return {"reader": self.name}

    def close(self) -> None:
        pass


class PosixReader(Reader):
    name = "posix"
    flags = os.O_RDONLY

    def __init__(self, files):
        super().__init__(files)
        try:
            self.fds = [os.open(f, self.flags) for f in self.files]
        except OSError as e:
            raise CalibrateError(f"{self.name} reader cannot open block files: {one_line(e)}") from None

    def read_into(self, file_idx, offset, length, buf) -> int:
        view = memoryview(buf)[:length]
        got = 0
        while got < length:
            n = os.preadv(self.fds[file_idx], [view[got:]], offset + got)
            if n <= 0:
                raise CalibrateError(f"short read: {self.files[file_idx]} at {offset + got}")
            got += n
        return got

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class ODirectReader(PosixReader):
    name = "odirect"
    direct = True
    flags = os.O_RDONLY | getattr(os, "O_DIRECT", 0)

    def __init__(self, files):
        if not hasattr(os, "O_DIRECT"):
            raise Unavailable("O_DIRECT is not supported on this platform")
        super().__init__(files)

    def read_into(self, file_idx, offset, length, buf) -> int:
        if offset % ALIGN or length % ALIGN:
            raise CalibrateError(f"O_DIRECT reads need 4 KiB aligned offsets and lengths (got {offset}, {length})")
        return super().read_into(file_idx, offset, length, buf)


class UsrbioReader(Reader):
    """3FS USRBIO through ``hf3fs_fuse.io`` (or a module with the same API, for tests)."""

    name = "usrbio"
    direct = True

    def __init__(self, files, module=None, entries: int = 64, shm_size: int = 256 << 20):
        super().__init__(files)
        self.h3 = module if module is not None else import_usrbio()
        self.mount = self.h3.extract_mount_point(str(self.files[0]))
        self.fds = [os.open(f, os.O_RDONLY) for f in self.files]
        for fd in self.fds:
            self.h3.register_fd(fd)
        from multiprocessing import shared_memory

        self.shm = shared_memory.SharedMemory(create=True, size=shm_size)
        self.iov = self.h3.make_iovec(self.shm, self.mount)
        self.ior = self.h3.make_ioring(self.mount, entries, for_read=True)
        self.entries = entries
        self.shm_size = shm_size

    def read_into(self, file_idx, offset, length, buf) -> int:
        self.read_many([(file_idx, offset, length)], 1)
        memoryview(buf)[:length] = self.shm.buf[:length]
        return length

    def read_many(self, reads, depth, buffers=None) -> float:
        maxlen = max(r[2] for r in reads)
        depth = max(1, min(depth, self.entries, self.shm_size // maxlen))
        t0 = time.perf_counter()
        for i in range(0, len(reads), depth):
            batch = reads[i : i + depth]
            for j, (f, off, ln) in enumerate(batch):
                self.ior.prepare(self.iov[j * maxlen : j * maxlen + ln], True, self.fds[f], off, userdata=j)
            results = self.ior.submit().wait(min_results=len(batch))
            for r in results:
                if r.result < 0:
                    raise CalibrateError(f"usrbio read failed: errno {-r.result}")
        return time.perf_counter() - t0

    def versions(self) -> dict:
        return {"reader": "usrbio", "hf3fs": getattr(self.h3, "__version__", "unknown")}

    def close(self):
        for fd in self.fds:
            try:
                self.h3.deregister_fd(fd)
            except Exception:  # noqa: BLE001
                pass
            os.close(fd)
        self.shm.close()
        self.shm.unlink()


def import_usrbio():
    try:
        import hf3fs_fuse.io as h3  # type: ignore
    except Exception as e:  # ImportError, or an OSError from a missing shared library
        raise Unavailable(f"3FS USRBIO binding (hf3fs_fuse.io) is not importable: {one_line(e)}") from None
    return h3


def open_reader(name: str, files: list[Path], **kw) -> Reader:
    if name == "posix":
        return PosixReader(files)
    if name == "odirect":
        return ODirectReader(files)
    if name == "usrbio":
        return UsrbioReader(files, **kw)
    raise CalibrateError(f"unknown reader {name!r} (posix, odirect, usrbio)")


# --------------------------------------------------------------------------------------- sweep
@dataclass
class StorageSweep:
    reader: Reader
    layout: BlockLayout
    sizes: tuple[int, ...]
    depths: tuple[int, ...] = (1, 2, 4, 8, 16)
    reps: int = 8
    count: int = 32
    warmup: int = 2
    link: str = "storage"
    seed: int = 1

    def _reads(self, rnd: random.Random, size: int, n: int) -> list[tuple[int, int, int]]:
        stride = self.layout.aligned_block
        out = []
        for _ in range(n):
            f = rnd.randrange(len(self.reader.files))
            nblocks = max(1, self.reader.sizes[f] // stride)
            if size <= stride:
                off = rnd.randrange(nblocks) * stride
            else:
                off = rnd.randrange(max(1, (self.reader.sizes[f] - size) // ALIGN + 1)) * ALIGN
            out.append((f, off, size))
        return out

    def run(self, log: SampleLog, progress: bool = False) -> list[dict]:
        rnd = random.Random(self.seed)
        base = {"kind": "storage", "link": self.link, "op": "read", "reader": self.reader.name,
                "layout": self.layout.describe()}
        read_size = lambda s: -(-s // ALIGN) * ALIGN if self.reader.direct else s  # noqa: E731
        maxsize = max(read_size(s) for s in self.sizes + (self.layout.full_block,))
        buffers = [self.reader.buffer(maxsize) for _ in range(max(self.depths + (1,)))]

        def lat(item: PlanItem) -> dict:
            size = read_size(item.size)
            el = self.reader.read_many(self._reads(rnd, size, 1), 1, buffers)
            return {"elapsed_s": el, "count": 1, "bytes": size}

        def bw(item: PlanItem) -> dict:
            size = read_size(item.size)
            count = max(self.count, 8 * item.depth)  # keep the drain at the end of a batch small
            el = self.reader.read_many(self._reads(rnd, size, count), item.depth, buffers[: item.depth])
            return {"elapsed_s": el, "count": count, "bytes": size * count}

        out = run_plan(make_plan(self.sizes, self.reps, self.seed), lat, log, f"storage:{self.reader.name}:lat",
                       base, warmup=self.warmup)
        depth_plan = make_plan((self.layout.full_block,), max(3, self.reps // 2), self.seed + 1, self.depths)
        out += run_plan(depth_plan, bw, log, f"storage:{self.reader.name}:depth", {**base, "mode": "depth"},
                        warmup=1)
        return out
