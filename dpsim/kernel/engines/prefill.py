"""Prefill: an EP group of prefill engines running forward passes in lockstep.

Each pass, every engine of the group takes requests from its FIFO while the predicted attention
time stays under the quota (300 ms); the request that does not fit is chunked (chunked prefill).
The group's pass time is the GPU model's (slowest attention + shared experts). During the pass:

- the hit KV of each request moves into the PE's HBM (PE read path: node DRAM -> CNIC loopback;
  DE read path: DE DRAM -> DE CNIC -> PE CNIC), low class;
- the EP all-to-all runs as a high-class flow on each GPU's NIC, paced over the compute time
  (low class too when isolation is off, so KV then slows the pass);
- the KV to hand off moves PE HBM -> DE node buffer (all of it on the PE path, only the new tokens'
  KV on the DE path).

Layerwise prefill overlaps loading with compute layer by layer: with transfers finishing at t_B,
the pass ends at max(t0 + (t_B - t0)/L + compute, t_B + compute/L) (one layer of the other term
cannot overlap). Whole-prompt prefill (Basic) loads everything first, then computes, then hands
off, and must hold the batch's whole KV in HBM until the hand-off completes, so free HBM caps the
batch. Its loader reads the hit KV from storage when the pass forms (whole_prompt_kv_read=at_pass),
or, double-buffered (=next_pass), into DRAM while the pass before computes
(docs/modeling.md#basic-pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence

import simpy

from dpsim.kernel import de_bypass
from dpsim.kernel.context import SimContext
from dpsim.kernel.engines.split_load import load_split_kv
from dpsim.kernel.entities import PrefillEngine, ReadSide, Request
from dpsim.kernel.resources.countdown import Countdown
from dpsim.kernel.resources.gpu import GpuModel
from dpsim.kernel.resources.net import TrafficClass
from dpsim.scenario.config import WholePromptKvRead


class PrefillGroup:
    """The engines of one EP group and the SimPy process that runs their passes."""

    def __init__(self, sim: SimContext, index: int, nodes: int, gpu: GpuModel):
        self.sim = sim
        self.index = index
        self.nodes = nodes  # nodes spanned by the EP group (all-to-all crosses nodes only)
        self.gpu = gpu
        self.engines: list[PrefillEngine] = []
        self._wakeup: simpy.Event | None = None
        self.busy_s = 0.0  # GPU computing (pass compute time), not waiting for KV
        self.occupied_s = 0.0  # wall time of passes, waits for KV and collectives included
        self.passes = 0
        self.attention_balance: list[float] = []  # max/avg attention time per pass (EP groups only)
        # whole_prompt_kv_read=next_pass: the pass now computing (None between passes), and the reads
        # of the next pass's KV started meanwhile, until that pass forms and takes them (`_loads`).
        self._computing: list[list[tuple[Request, int]]] | None = None
        self._next_pass_reads: dict[Request, simpy.Process] = {}

    def start(self) -> None:
        self.sim.env.process(self._run())

    def wake(self) -> None:
        """A request was queued at an engine, or HBM was freed."""
        if self._computing is not None:  # it may belong to the next pass: read its KV now
            self._read_next_pass()
        if self._wakeup is not None and not self._wakeup.triggered:
            self._wakeup.succeed()

    def _run(self):
        env = self.sim.env
        while True:
            batches = [self._form_batch(e) for e in self.engines]
            if not any(batches):
                self._wakeup = simpy.Event(env)
                yield self._wakeup
                continue
            yield from self._pass(batches)

    def _form_batch(self, engine: PrefillEngine,
                    after: Sequence[tuple[Request, int]] = ()) -> list[tuple[Request, int]]:
        """FIFO under the attention quota; the request that does not fit gets the chunk that does.
        `after`: the engine's part of the pass now computing; then the batch that will form when that
        pass ends (its chunks counted as done, its KV still in HBM)."""
        sim = self.sim
        quota = sim.scenario.policy.attention_quota
        kv = sim.model.kv_bytes_per_token
        gpu = self.gpu
        batch, used_s = [], 0.0
        hbm_left = engine.hbm_free
        computing = dict(after)
        for req in engine.ready:
            prefilled = req.prefilled + computing.get(req, 0)
            todo = req.turn.new_tokens - prefilled
            if todo <= 0 and req in computing:
                continue  # its last chunk is in the pass now computing
            cached = req.turn.cached_tokens + prefilled
            if not sim.switches.layerwise:
                # Whole-prompt prefill holds all the request's KV in HBM during the pass and hand-off.
                fit = int(hbm_left // kv) - cached
                if fit < 1:
                    break
                todo = min(todo, fit)
            need_s = gpu.attention_seconds(cached, todo)
            if used_s + need_s > quota:
                chunk = gpu.attention_chunk(cached, todo, quota - used_s)
                if chunk > 0:
                    batch.append((req, chunk))
                elif not batch:
                    batch.append((req, max(1, min(todo, sim.scenario.policy.block_tokens))))  # progress
                break
            batch.append((req, todo))
            used_s += need_s
            hbm_left -= (cached + todo) * kv
        return batch

    def _pass(self, batches: list[list[tuple[Request, int]]]):
        sim, env = self.sim, self.sim.env
        kv = sim.model.kv_bytes_per_token
        layers = sim.model.layers
        work = [[(r.turn.cached_tokens + r.prefilled, n) for r, n in batch] for batch in batches]
        pass_time = self.gpu.prefill_pass(work)
        n_requests = sum(len(b) for b in batches)
        compute_s = pass_time.seconds + layers * sim.scenario.hardware.gpu.copy_submit_overhead * max(
            n_requests / max(len(self.engines), 1), 1.0)
        if len(self.engines) > 1 and max(pass_time.attention_s_by_gpu) > 0:
            mean = sum(pass_time.attention_s_by_gpu) / len(pass_time.attention_s_by_gpu)
            self.attention_balance.append(max(pass_time.attention_s_by_gpu) / mean)
        t0 = env.now
        engine_reads = sim.switches.kv_read.by_prefill_engine
        for engine, batch in zip(self.engines, batches):
            for req, new in batch:
                if req.t_prefill_start is None and not engine_reads:
                    req.t_prefill_start = t0
                if not sim.switches.layerwise:
                    engine.hbm_free -= (req.turn.cached_tokens + req.prefilled + new) * kv
        loads = self._loads(batches)
        collectives = self._collectives(batches, compute_s)
        if sim.switches.layerwise:
            handoffs = [self._hand_off(engine, req, n) for engine, batch in zip(self.engines, batches)
                        for req, n in batch]
            yield simpy.AllOf(env, loads)
            t_loaded = env.now
            end = max(t0 + (t_loaded - t0) / layers + compute_s, t_loaded + compute_s / layers)
            yield simpy.Timeout(env, max(end - env.now, 0.0))
            yield simpy.AllOf(env, collectives)
        else:
            yield simpy.AllOf(env, loads)
            if engine_reads:  # compute starts once every member's KV is in HBM
                for batch in batches:
                    for req, _ in batch:
                        if req.t_prefill_start is None:
                            req.t_prefill_start = env.now
            if sim.switches.kv_read is WholePromptKvRead.NEXT_PASS:
                self._computing = batches
                self._read_next_pass()
            yield simpy.Timeout(env, compute_s)
            yield simpy.AllOf(env, collectives)
            self._computing = None
            handoffs = [self._hand_off(engine, req, n) for engine, batch in zip(self.engines, batches)
                        for req, n in batch]
        self.busy_s += compute_s
        self.occupied_s += env.now - t0
        self.passes += 1
        index = 0
        for engine, batch in zip(self.engines, batches):
            for req, n in batch:
                self._chunk_done(engine, req, n, handoffs[index])
                index += 1
        sim.dispatch()

    def _loads(self, batches: list[list[tuple[Request, int]]]) -> list[simpy.Event]:
        """Start loading every member's KV into HBM; the events to wait for, all of them. The plain
        copies of KV already read share one countdown (`Countdown`: the same wake-up as an event each)."""
        env = self.sim.env
        staged = self._next_pass_reads

        def loader_reads(req: Request) -> bool:  # whole-prompt prefill: at this pass, or one pass ahead
            return req.t_read_end is None or req in staged

        copies = sum(1 for batch in batches for req, _ in batch
                     if not loader_reads(req) and req.read_side is not ReadSide.SPLIT)
        countdown = Countdown(env, copies) if copies else None
        loads: list[simpy.Event] = [countdown] if countdown is not None else []
        for engine, batch in zip(self.engines, batches):
            for req, _ in batch:
                if loader_reads(req):
                    loads.append(env.process(self._read_and_load(engine, req, staged.pop(req, None))))
                elif req.read_side is ReadSide.SPLIT:
                    loads.append(self._load_kv(engine, req))
                else:  # read ahead, or an earlier chunk
                    self._load_kv(engine, req, countdown)
        return loads

    def _load_kv(self, engine: PrefillEngine, req: Request, done: simpy.Event | None = None) -> simpy.Event:
        """Move the request's already-computed KV (hit + earlier chunks) into the PE's HBM, from the
        buffer of the side that read it; `done`: a countdown to count down instead (whole reads only)."""
        sim = self.sim
        if req.read_side is ReadSide.SPLIT:
            return load_split_kv(sim, engine, req)
        size = (req.turn.cached_tokens + req.prefilled) * sim.model.kv_bytes_per_token
        if req.read_side is ReadSide.DECODE:
            path = sim.cluster.remote_dram_to_gpu_path(req.de.node, req.de.gpu, engine.node, engine.gpu)
            return sim.move(path, size, "kv_de_to_pe", done)
        return sim.move(sim.cluster.loopback_path(engine.node, engine.gpu), size, "kv_h2d_pe", done)

    def _read_and_load(self, engine: PrefillEngine, req: Request, read: simpy.Process | None):
        """Whole-prompt loader: read the hit KV from storage when the pass that needs it forms
        (whole_prompt_kv_read=at_pass), or wait for the `read` started while the pass before computed
        (=next_pass), then copy it into HBM. The pass waits for every member's load (EP lockstep), so
        at_pass storage reads and compute alternate instead of overlapping. The DRAM copy is a staging
        area, freed once the KV is in HBM (HBM holds it until the hand-off)."""
        if read is None:
            yield from self.sim.read_hit_kv(req)
        else:
            yield read
        yield self._load_kv(engine, req)
        self.sim.release_pe_buffer(req)

    def _read_next_pass(self) -> None:
        """Double buffering (whole_prompt_kv_read=next_pass, docs/modeling.md#basic-pipeline): while a
        pass computes, read the hit KV of the requests that will form the next pass (`_form_batch`
        after the pass now computing) from storage into the read side's DRAM buffer. One pass ahead
        and only as far as DRAM: HBM still holds one pass's KV, and the copy into it waits for the
        next pass to form (`_read_and_load`). HBM only grows until then, so with FIFO engines every
        request read here is in that pass."""
        env = self.sim.env
        for engine, batch in zip(self.engines, self._computing):
            for req, _ in self._form_batch(engine, after=batch):
                if req.t_read_end is None and req not in self._next_pass_reads:
                    self._next_pass_reads[req] = env.process(self.sim.read_hit_kv(req))

    def _collectives(self, batches, compute_s: float) -> list[simpy.Event]:
        sim = self.sim
        per_token = sim.model.a2a_bytes_per_token(self.nodes)
        if per_token <= 0:
            return []
        cls = TrafficClass.HIGH if sim.switches.isolation else TrafficClass.LOW
        sizes = [per_token * sum(n for _, n in batch) for batch in batches]
        senders = sum(1 for size in sizes if size > 0)
        if not senders:
            return []
        done = Countdown(sim.env, 2 * senders)  # one wake-up for them all
        for engine, size in zip(self.engines, sizes):
            if size <= 0:
                continue
            rate = size / compute_s
            # Bytes this GPU sends and receives in the all-to-all, paced by the layers' compute.
            sim.cluster.net.transfer([engine.node.cnic_tx[engine.gpu]], size, cls, rate, "a2a", done)
            sim.cluster.net.transfer([engine.node.cnic_rx[engine.gpu]], size, cls, rate, "a2a", done)
        return [done]

    def _hand_off(self, engine: PrefillEngine, req: Request, new: int) -> simpy.Event:
        """Send this chunk's KV to the DE node's buffer: hit + new on the PE path (first chunk carries
        the hit), new only on the DE path (the hit is already there); a split read sends its PE part."""
        sim = self.sim
        tokens = new + (req.turn.cached_tokens - req.hit_tokens_de if req.prefilled == 0 else 0)
        if sim.scenario.policy.de_bypass:  # GPUDirect RDMA into decode HBM (dpsim.kernel.de_bypass)
            path = de_bypass.hand_off_path(engine.node, engine.gpu, req.de.node, req.de.gpu)
        else:
            path = sim.cluster.gpu_to_remote_dram_path(engine.node, engine.gpu, req.de.node, req.de.gpu)
        return sim.move(path, tokens * sim.model.kv_bytes_per_token, "kv_pe_to_de")

    def _chunk_done(self, engine: PrefillEngine, req: Request, new: int, handoff: simpy.Event) -> None:
        sim = self.sim
        held = (req.turn.cached_tokens + req.prefilled + new) * sim.model.kv_bytes_per_token
        req.prefilled += new
        req.chunks += 1
        if not sim.switches.layerwise:
            if handoff.processed:
                self._release_hbm(engine, held)
            else:
                handoff.callbacks.append(lambda _e, engine=engine, held=held: self._release_hbm(engine, held))  # type: ignore[misc]
        if req.unprefilled > 0:
            return
        engine.ready.remove(req)
        req.t_first_token = sim.env.now
        sim.prefill_done(engine, req)
        sim.release_pe_buffer(req)
        sim.hand_over(req, handoff)

    def _release_hbm(self, engine: PrefillEngine, size: float) -> None:
        engine.hbm_free += size
        self.wake()

