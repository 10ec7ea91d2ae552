"""Message-size, queue-depth and concurrency sweeps over a transport (like ``ib_read_bw`` /
``ib_write_bw`` with ``-a``, ``-t`` and ``-q``), recorded sample by sample."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .measure import PlanItem, SampleLog, make_plan, run_plan, timed_threads
from .transports import Endpoint, get_transport, transfer_batch


@dataclass
class TransportSweep:
    address: str
    transport: str = "tcp"
    op: str = "read"
    region: str = "mem"
    link: str = "compute"
    sizes: tuple[int, ...] = (4096,)
    reps: int = 5
    warmup: int = 3
    depths: tuple[int, ...] = (1,)
    concurrencies: tuple[int, ...] = (1,)
    count: int = 1  # messages per sample when depth or concurrency > 1
    priority: int | None = None
    seed: int = 1
    transport_opts: dict | None = None
    gap_s: float = 0.0  # idle before each timed sample, so a shaper's token bucket is full again
    bucket_bytes: int = 0  # the link's token bucket, recorded for the fit (test bed only; NICs have none)

    def config(self) -> str:
        """What ``--resume`` matches on: the experiment (transport, link, operation, region,
        priority), not the peer's address, whose port changes each time a server is restarted."""
        return f"transport:{self.transport}:{self.link}:{self.op}:{self.region}:{self.priority}"

    def run(self, log: SampleLog, progress: bool = False) -> list[dict]:
        tr = get_transport(self.transport, **(self.transport_opts or {}))
        nconn = max(self.concurrencies)
        eps: list[Endpoint] = [tr.connect(self.address, priority=self.priority) for _ in range(nconn)]
        try:
            remote = eps[0].remote(self.region)
            max_size = max(self.sizes)
            local = [tr.register(bytearray(max_size * max(1, min(max(self.depths), 8)))) for _ in range(nconn)]
            base = {"kind": "transport", "link": self.link, "op": self.op, "transport": self.transport,
                    "address": self.address, "priority": self.priority, "seed": self.seed}
            base.update({f"version_{k}": v for k, v in tr.versions().items()})
            if self.gap_s:
                base["gap_s"] = self.gap_s
            if self.bucket_bytes:
                base["bucket_bytes"] = self.bucket_bytes

            def one(ep, loc, item: PlanItem, count: int) -> None:
                transfer_batch(ep, self.op, loc, remote, item.size, count, item.depth)

            def measure(item: PlanItem) -> dict:
                count = 1 if (item.depth == 1 and item.concurrency == 1) else self.count
                if self.gap_s:
                    time.sleep(self.gap_s)
                if item.concurrency == 1:
                    t0 = time.perf_counter()
                    one(eps[0], local[0], item, count)
                    elapsed = time.perf_counter() - t0
                else:
                    elapsed = timed_threads(item.concurrency, lambda i: one(eps[i], local[i], item, count))
                return {"elapsed_s": elapsed, "count": count, "bytes": item.size * count * item.concurrency}

            plan = make_plan(self.sizes, self.reps, self.seed, self.depths, self.concurrencies)
            return run_plan(plan, measure, log, self.config(), base, warmup=self.warmup, progress=progress)
        finally:
            for ep in eps:
                ep.close()


def contend(address: str, flows: list[tuple[int, int | None, float]], log: SampleLog, transport: str = "tcp",
            region: str = "mem", chunk: int = 1 << 20, depth: int = 4, link: str = "compute") -> list[dict]:
    """Run several READ streams at once, each (bytes, priority, start offset s), one connection each,
    and record when each started and finished and its progress (for priority / sharing fits)."""
    tr = get_transport(transport)
    eps = [tr.connect(address, priority=prio) for _, prio, _ in flows]
    remote = eps[0].remote(region)
    records: list[dict] = [dict() for _ in flows]
    barrier = threading.Barrier(len(flows) + 1)
    t0 = [0.0]
    errors: list[BaseException] = []

    def run(i):
        total, prio, offset = flows[i]
        ep = eps[i]
        local = tr.register(bytearray(chunk * depth))
        barrier.wait()
        try:
            if offset:
                time.sleep(max(0.0, t0[0] + offset - time.perf_counter()))
            start = time.perf_counter()
            progress = []  # (time, bytes arrived) at every completion
            sizes = [chunk] * (total // chunk) + ([total % chunk] if total % chunk else [])
            posted = moved = 0
            inflight = []
            while posted < len(sizes) or inflight:
                while posted < len(sizes) and len(inflight) < depth:
                    ep.post_read(local, (posted % depth) * chunk, remote, 0, sizes[posted])
                    inflight.append(sizes[posted])
                    posted += 1
                for _ in ep.wait(1):
                    moved += inflight.pop(0)
                    progress.append([time.perf_counter() - t0[0], moved])
            end = time.perf_counter()
            records[i] = {"kind": "priority", "link": link, "op": "read", "flow": i, "priority": prio,
                          "size": moved, "bytes": moved, "t_start": start - t0[0], "t_end": end - t0[0],
                          "elapsed_s": end - start, "progress": progress, "nflows": len(flows)}
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(flows))]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    for ep in eps:
        ep.close()
    if errors:
        raise errors[0]
    group = f"contend-{int(time.time() * 1000)}"
    return [log.write({**r, "group": group}) for r in records]
