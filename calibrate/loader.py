"""The dual-path loader, for real (DualPath section 3).

* **PE read path**: storage -> prefill host's storage NIC -> local DRAM buffer -> target buffer
  (the copy stands in for the H2D into the prefill GPU; on a GPU host the target is device memory).
* **DE read path**: storage -> decode host's storage NIC -> decode DRAM buffer -> layer blocks over
  the transport (compute link; RDMA WRITE on a cluster, TCP here) -> prefill host's target buffer.

Run on the prefill host (``dpsim-calibrate loader``, this module); the decode host runs
``dpsim-calibrate decode-agent`` (calibrate.decode_agent); the storage host runs ``dpsim-calibrate serve --files DIR`` (or,
on a cluster, block files are read from 3FS). A request is ``blocks_per_request`` Full Blocks at
random block offsets of the block files; requests are split between the paths (``both`` alternates)
and each path keeps ``depth`` requests in flight (one worker each). Every block is one storage read
(one ``io_overhead``); the DE path forwards each Full Block as ``layers`` Layer Block writes.

Raw records: one ``experiment`` record (the configuration, enough for ``check`` to rebuild it), one
``loader`` record per request (path, submit and completion time relative to the start, bytes),
``copy`` records (local -> target copies, size and time) and a ``loader_total`` record (makespan and
aggregate bandwidth per path).
"""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from dpsim.scenario.units import parse_bytes

from .errors import CalibrateError
from .measure import SampleLog
from .storage import ALIGN, BlockLayout
from .transports import get_transport
from .transports.files import connect_storage
from .transports.tcp import TcpServer, _recv_line, split_address

WARMUP_BLOCKS = 2  # reads (and forwards) per connection before the timed run, on both sides


@dataclass
class LoaderConfig:
    block_size: int
    layers: int
    blocks_per_request: int
    requests: int
    paths: str = "both"
    depth: int = 2
    files: str = "blocks"
    seed: int = 1
    model: str | None = None
    transport: str = "tcp"

    @classmethod
    def build(cls, model=None, block_size="1MiB", layers=8, blocks_per_request=8, requests=32, paths="both",
              depth=2, files="blocks", seed=1, transport="tcp", block_tokens=64) -> LoaderConfig:
        if model:
            lay = BlockLayout.for_model(model, block_tokens)
            bs, nl = lay.full_block, lay.layers
        else:
            bs, nl = int(parse_bytes(block_size)), int(layers)
        if paths not in ("pe", "de", "both"):
            raise CalibrateError(f"paths must be pe, de or both, not {paths!r}")
        return cls(bs, nl, int(blocks_per_request), int(requests), paths, int(depth), files, int(seed), model,
                   transport)

    @property
    def stride(self) -> int:
        return -(-self.block_size // ALIGN) * ALIGN

    @property
    def request_bytes(self) -> int:
        return self.block_size * self.blocks_per_request

    def layer_slices(self) -> list[tuple[int, int]]:
        base = self.block_size // self.layers
        out, off = [], 0
        for i in range(self.layers):
            n = base if i < self.layers - 1 else self.block_size - off
            out.append((off, n))
            off += n
        return out

    def assign(self) -> list[str]:
        if self.paths == "both":
            return ["pe" if i % 2 == 0 else "de" for i in range(self.requests)]
        return [self.paths] * self.requests


def _block_plan(cfg: LoaderConfig, regions: dict, rnd: random.Random) -> list[list[tuple[str, int]]]:
    files = sorted(n for n in regions if n.startswith(cfg.files))
    if not files:
        raise CalibrateError(f"storage server advertises no block files named {cfg.files}*")
    out = []
    for _ in range(cfg.requests):
        blocks = []
        for _ in range(cfg.blocks_per_request):
            f = rnd.choice(files)
            n = regions[f].length // cfg.stride
            if n < 1:
                raise CalibrateError(f"block file {f} is smaller than one block of {cfg.block_size} B")
            blocks.append((f, rnd.randrange(n) * cfg.stride))
        out.append(blocks)
    return out


# ---------------------------------------------------------------------------------- prefill side
def run_prefill_side(cfg: LoaderConfig, storage_pe: str, storage_de: str | None, decode_addr: str | None,
                     listen: str, advertise: str | None, log: SampleLog, repeat: int = 1,
                     priority: int | None = None, on_request=None) -> dict:
    """Run the experiment ``repeat`` times. ``on_request(i, path, blocks, view)`` (optional) is
    called when request i has fully arrived, with its target-buffer slot (e.g. to verify data)."""
    if cfg.paths in ("de", "both") and not decode_addr:
        raise CalibrateError("the DE read path needs --decode (a running decode-agent)")
    tr = get_transport(cfg.transport)
    probe = connect_storage(storage_pe, tr)
    regions = dict(probe.remote_regions)
    probe.close()
    finished = finished_runs(log.samples, cfg)
    results = []
    for rep in range(repeat):
        if rep in finished:  # --resume: this repetition of this configuration is already in the file
            results.append(finished[rep])
            continue
        results.append(_one_run(cfg, tr, regions, storage_pe, decode_addr, listen, advertise, log, rep, priority,
                                on_request))
    return results[-1] if len(results) == 1 else {"runs": results}


def finished_runs(samples: list[dict], cfg: LoaderConfig) -> dict[int, dict]:
    """The ``loader_total`` record per repetition of this configuration that already completed in
    ``samples`` (what ``--resume`` skips). A repetition interrupted part-way has no total: it is run
    again from its start, since its requests' timing depends on every request in flight beside them."""
    totals = {r["experiment"]: r for r in samples if r.get("kind") == "loader_total"}
    want = asdict(cfg)
    out = {}
    for r in samples:
        if r.get("kind") == "experiment" and r.get("what") == "loader" and r.get("config") == want \
                and r["experiment"] in totals:
            out[r.get("rep", 0)] = totals[r["experiment"]]
    return out


def _one_run(cfg, tr, regions, storage_pe, decode_addr, listen, advertise, log, rep, priority, on_request) -> dict:
    rnd = random.Random(cfg.seed + rep)
    plan = _block_plan(cfg, regions, rnd)
    paths = cfg.assign()
    slot_bytes = cfg.request_bytes
    nslots = 2 * cfg.depth
    target_mem = bytearray(slot_bytes * nslots)
    log_lock = threading.Lock()
    exp_id = f"loader-{int(time.time() * 1000)}-{rep}"

    def write(rec):
        with log_lock:
            log.write(rec)

    def record(rec):  # each request is in the raw file as soon as it completes
        records.append(rec)
        write(rec)

    if cfg.transport == "rdma":
        from .transports.rdma import RdmaServer

        server: Any = RdmaServer(listen)
    else:
        server = TcpServer(listen)
    server.add_buffer("target", target_mem)
    server.start()
    target_addr = advertise or server.address
    if advertise and advertise.endswith(":0"):
        target_addr = advertise[:-2] + ":" + server.address.rsplit(":", 1)[1]

    write({"kind": "experiment", "experiment": exp_id, "what": "loader", "config": asdict(cfg),
           "storage_pe": storage_pe, "decode": decode_addr, "rep": rep})
    queues: dict[str, queue.Queue] = {"pe": queue.Queue(), "de": queue.Queue()}
    for i, p in enumerate(paths):
        queues[p].put(i)
    records: list[dict] = []
    events: dict[int, threading.Event] = {}
    errors: list[BaseException] = []

    ctrl = None
    if "de" in paths:
        host, port = split_address(decode_addr, 18600)
        ctrl = socket.create_connection((host, port), timeout=30)
        ctrl.settimeout(None)
        ctrl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctrl.sendall((json.dumps({"config": asdict(cfg), "target": target_addr, "priority": priority}) + "\n").encode())
        if not json.loads(_recv_line(ctrl)).get("ready"):
            raise CalibrateError("decode agent did not become ready")
        done_at: dict[int, float] = {}

        def ctrl_reader():
            try:
                while True:
                    msg = json.loads(_recv_line(ctrl))
                    done_at[msg["id"]] = time.perf_counter()
                    events[msg["id"]].set()
            except (ConnectionError, OSError, ValueError):
                return

        threading.Thread(target=ctrl_reader, daemon=True).start()
    ctrl_lock = threading.Lock()
    t_start = [0.0]
    start = threading.Barrier(cfg.depth * (("pe" in paths) + ("de" in paths)) + 1,
                              action=lambda: t_start.__setitem__(0, time.perf_counter()))

    def pe_worker(slot: int):
        try:
            ep = connect_storage(storage_pe, tr, priority=priority)
            local = tr.register(bytearray(cfg.stride))
            target = memoryview(target_mem)
            fname = plan[0][0][0]
            for _ in range(WARMUP_BLOCKS):
                ep.post_read(local, 0, ep.remote(fname), 0, cfg.block_size)
                ep.wait(1)
            start.wait()
            while True:
                try:
                    i = queues["pe"].get_nowait()
                except queue.Empty:
                    break
                t0 = time.perf_counter()
                copy_s = 0.0
                base = slot * slot_bytes
                for j, (fname, off) in enumerate(plan[i]):
                    ep.post_read(local, 0, ep.remote(fname), off, cfg.block_size)
                    ep.wait(1)
                    c0 = time.perf_counter()
                    target[base + j * cfg.block_size : base + (j + 1) * cfg.block_size] = local.buf[: cfg.block_size]
                    c1 = time.perf_counter()
                    copy_s += c1 - c0
                    write({"kind": "copy", "link": "host_copy", "op": "copy", "size": cfg.block_size,
                           "elapsed_s": c1 - c0, "count": 1, "experiment": exp_id})
                t1 = time.perf_counter()
                if on_request:
                    on_request(i, "pe", plan[i], target[base : base + slot_bytes])
                record({"kind": "loader", "experiment": exp_id, "request": i, "path": "pe",
                                "t_submit": t0 - t_start[0], "t_done": t1 - t_start[0], "elapsed_s": t1 - t0,
                                "bytes": cfg.request_bytes, "blocks": cfg.blocks_per_request, "copy_s": copy_s,
                                "worker": slot})
            ep.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def de_worker(slot: int):
        try:
            start.wait()
            while True:
                try:
                    i = queues["de"].get_nowait()
                except queue.Empty:
                    break
                events[i] = threading.Event()
                t0 = time.perf_counter()
                msg = {"id": i, "blocks": plan[i], "slot": slot * slot_bytes}
                with ctrl_lock:
                    ctrl.sendall((json.dumps(msg) + "\n").encode())
                if not events[i].wait(600):
                    raise CalibrateError(f"decode agent never completed request {i}")
                t1 = done_at[i]
                if on_request:
                    base = slot * slot_bytes
                    on_request(i, "de", plan[i], memoryview(target_mem)[base : base + slot_bytes])
                record({"kind": "loader", "experiment": exp_id, "request": i, "path": "de",
                                "t_submit": t0 - t_start[0], "t_done": t1 - t_start[0], "elapsed_s": t1 - t0,
                                "bytes": cfg.request_bytes, "blocks": cfg.blocks_per_request, "worker": slot})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = []
    if "pe" in paths:
        threads += [threading.Thread(target=pe_worker, args=(k,)) for k in range(cfg.depth)]
    if "de" in paths:
        threads += [threading.Thread(target=de_worker, args=(cfg.depth + k,)) for k in range(cfg.depth)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    makespan = time.perf_counter() - t_start[0]
    if ctrl is not None:
        try:
            ctrl.sendall(b'{"bye": true}\n')
        except OSError:
            pass
        ctrl.close()
    server.close()
    if errors:
        raise errors[0] if isinstance(errors[0], CalibrateError) else CalibrateError(f"loader failed: {errors[0]!r}")

    total = {"kind": "loader_total", "experiment": exp_id, "makespan_s": makespan,
             "bytes": cfg.request_bytes * cfg.requests, "aggregate_bw": cfg.request_bytes * cfg.requests / makespan}
    for p in ("pe", "de"):
        rs = [r for r in records if r["path"] == p]
        if rs:
            end = max(r["t_done"] for r in rs)
            total[f"{p}_bytes"] = sum(r["bytes"] for r in rs)
            total[f"{p}_makespan_s"] = end
            total[f"{p}_bw"] = total[f"{p}_bytes"] / end
    write(total)
    return total


def format_result(res: dict) -> str:
    if "runs" in res:
        return "\n".join(format_result(r) for r in res["runs"])
    parts = [f"loader {res['experiment']}: {res['bytes'] / 1e6:.1f} MB in {res['makespan_s']:.3f} s = "
             f"{res['aggregate_bw'] / 1e6:.2f} MB/s"]
    for p in ("pe", "de"):
        if f"{p}_bw" in res:
            parts.append(f"{p} path {res[f'{p}_bw'] / 1e6:.2f} MB/s")
    return ", ".join(parts)
