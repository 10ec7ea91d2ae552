"""Message-size, queue-depth and concurrency sweeps over a transport (like ``ib_read_bw`` /
``ib_write_bw`` with ``-a``, ``-t`` and ``-q``), recorded sample by sample."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .measure import PlanItem, SampleLog, make_plan, run_plan
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

    def config(self) -> str:
        return f"transport:{self.transport}:{self.link}:{self.op}:{self.address}"

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

            def one(ep, loc, item: PlanItem, count: int) -> None:
                transfer_batch(ep, self.op, loc, remote, item.size, count, item.depth)

            def measure(item: PlanItem) -> dict:
                count = 1 if (item.depth == 1 and item.concurrency == 1) else self.count
                if item.concurrency == 1:
                    t0 = time.perf_counter()
                    one(eps[0], local[0], item, count)
                    elapsed = time.perf_counter() - t0
                else:
                    barrier = threading.Barrier(item.concurrency + 1)
                    errors: list[BaseException] = []

                    def worker(i):
                        barrier.wait()
                        try:
                            one(eps[i], local[i], item, count)
                        except BaseException as e:  # noqa: BLE001 - re-raised below
                            errors.append(e)

                    threads = [threading.Thread(target=worker, args=(i,)) for i in range(item.concurrency)]
                    for t in threads:
                        t.start()
                    barrier.wait()
                    t0 = time.perf_counter()
                    for t in threads:
                        t.join()
                    elapsed = time.perf_counter() - t0
                    if errors:
                        raise errors[0]
                return {"elapsed_s": elapsed, "count": count, "bytes": item.size * count * item.concurrency}

            plan = make_plan(self.sizes, self.reps, self.seed, self.depths, self.concurrencies)
            return run_plan(plan, measure, log, self.config(), base, warmup=self.warmup, progress=progress)
        finally:
            for ep in eps:
                ep.close()
