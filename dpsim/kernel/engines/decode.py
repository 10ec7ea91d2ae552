"""Decode: an EP group of decode engines stepping in lockstep with continuous batching.

A request joins after its prompt KV has reached the DE node's buffer: one H2D copy (buffer -> HBM
through the DE's compute NIC, low class) moves it in, then the buffer is freed and the request joins
the batch at the next step boundary. Every step decodes one token for every request of the group.

One event per batch change, not per token: while the batch does not change, the step time is
constant, so the group sleeps until the step at which the next request finishes, and a join wakes it
early (the join takes effect at the end of the step in progress). Contexts grow by a few hundred
tokens during a turn; the step time uses the contexts at the batch change (a documented
simplification). When a request finishes, its HBM is released and its new KV (prompt misses and
generated tokens) is written back: D2H through the compute NIC, then storage write.
"""

from __future__ import annotations

import heapq
import math

import simpy

from dpsim.kernel.context import SimContext
from dpsim.kernel.entities import DecodeEngine, Request
from dpsim.kernel.resources.gpu import GpuModel


class DecodeGroup:
    """The engines of one decode EP group and the SimPy process that steps them."""

    def __init__(self, sim: SimContext, index: int, nodes: int, gpu: GpuModel):
        self.sim = sim
        self.index = index
        self.nodes = nodes
        self.gpu = gpu
        self.engines: list[DecodeEngine] = []
        self.tok = 0  # sum of the engines' tok (the scheduler's group load), kept by the simulation
        self._joining: list[Request] = []
        # Finish times on a step-count clock: (group step at which the request's last token is out,
        # its place in the batch order, request). The place (engine position, admission number)
        # finishes same-step requests in batch order, so the run is the same as stepping each one.
        # It holds exactly the batch's requests (each joins it at admission and leaves it to finish).
        self._finishes: list[tuple[int, tuple[int, int], Request]] = []
        self._admitted = 0
        self._position: dict[int, int] = {}  # id(engine) -> its position in the group
        # Each engine's part of the step (GpuModel.decode_gpu_seconds), kept while its batch does not
        # change: a step needs only the slowest, and a batch change touches one or a few engines.
        self._gpu_s: list[float] = []
        self._changed: set[int] = set()  # positions whose batch changed since their _gpu_s
        self._wakeup: simpy.Event | None = None
        self.busy_s = 0.0
        self.steps = 0

    def start(self) -> None:
        self.sim.env.process(self._run())

    def hand_over(self, req: Request, kv_arrived: simpy.Event) -> None:
        """Wait for the prompt KV at the DE node, copy it into HBM, then join (a chain of callbacks,
        started by `sim.call_soon` where a process would take its first step)."""
        sim = self.sim
        size = sim.de_buffer_tokens(req) * sim.model.kv_bytes_per_token

        def arrived(_event=None) -> None:
            req.t_kv_at_decode = sim.env.now
            if not size and sim.scenario.policy.de_bypass:  # already in HBM (dpsim.kernel.de_bypass)
                loaded(None)
                return
            h2d = sim.move(sim.cluster.loopback_path(req.de.node, req.de.gpu), size, "kv_h2d_de")
            h2d.callbacks.append(loaded)

        def loaded(_event) -> None:
            sim.release_buffer(req.de.node, size)
            if req.turn.output_tokens <= 1:
                req.t_second_token = sim.env.now
                sim.finish(req)
                return
            req.decode_remaining = req.turn.output_tokens - 1
            context = req.turn.input_tokens
            req.decode_kv_read_bytes = sim.model.decode_kv_read_bytes(context)
            req.decode_attn_flops = sim.model.decode_attention_flops(context)
            self._joining.append(req)
            if self._wakeup is not None and not self._wakeup.triggered:
                self._wakeup.succeed()

        if kv_arrived.callbacks is None:  # already processed: go on at once, as a process would
            arrived()
        else:
            kv_arrived.callbacks.append(arrived)

    def _admit(self) -> list[Request]:
        """Join the waiting requests to the batch; return them (their second token is the next step's)."""
        joined = self._joining
        if not joined:
            return []  # not the waiting list itself: requests that join during the next segment must not count
        if not self._position:
            self._position = {id(engine): i for i, engine in enumerate(self.engines)}
            self._gpu_s = [0.0] * len(self.engines)
            self._changed = set(range(len(self.engines)))
        for req in joined:
            engine = req.de
            engine.active.append(req)
            engine.kv_read_bytes += req.decode_kv_read_bytes
            engine.attn_flops += req.decode_attn_flops
            self._admitted += 1
            position = self._position[id(engine)]
            self._changed.add(position)
            heapq.heappush(self._finishes, (self.steps + req.decode_remaining, (position, self._admitted), req))
        self._joining = []
        return joined

    def _step_seconds(self) -> float:
        """`GpuModel.decode_step` of the group's batches, re-evaluating only the engines whose batch
        changed (the slowest is a max, so it is the same whichever engines were re-evaluated)."""
        gpu_s, engines, gpu = self._gpu_s, self.engines, self.gpu
        for i in self._changed:
            e = engines[i]
            gpu_s[i] = gpu.decode_gpu_seconds(e.kv_read_bytes, len(e.active), e.attn_flops)
        self._changed.clear()
        slowest = max(gpu_s)
        # One token per request per step: the batch is the requests in _finishes.
        return gpu.decode_step_of(slowest if slowest > 0.0 else 0.0, len(self._finishes))

    def _run(self):
        sim, env = self.sim, self.sim.env
        finishes = self._finishes
        while True:
            joined = self._admit()
            if not finishes:
                self._wakeup = simpy.Event(env)
                yield self._wakeup
                continue
            step_s = self._step_seconds()
            steps_to_next_finish = finishes[0][0] - self.steps
            t0 = env.now
            self._wakeup = simpy.Event(env)
            segment_end = t0 + steps_to_next_finish * step_s
            yield _first_of(env, simpy.Timeout(env, steps_to_next_finish * step_s), self._wakeup)
            if env.now >= segment_end - 1e-12:
                steps = steps_to_next_finish
            else:
                # A join arrived mid-segment: finish the step in progress, then re-plan.
                steps = min(math.floor((env.now - t0) / step_s + 1e-9) + 1, steps_to_next_finish)
                yield simpy.Timeout(env, max(t0 + steps * step_s - env.now, 0.0))
            self.busy_s += steps * step_s
            self.steps += steps
            for req in joined:
                req.t_second_token = t0 + step_s
            done = []
            while finishes and finishes[0][0] <= self.steps:
                done.append(heapq.heappop(finishes))
            done.sort(key=lambda entry: entry[1])  # batch order
            for _, _, req in done:
                self._remove(req)
                sim.finish(req)

    def _remove(self, req: Request) -> None:
        engine = req.de
        engine.active.remove(req)
        engine.kv_read_bytes -= req.decode_kv_read_bytes
        engine.attn_flops -= req.decode_attn_flops
        self._changed.add(self._position[id(engine)])


def _first_of(env: simpy.Environment, a: simpy.Event, b: simpy.Event) -> simpy.Event:
    """`a | b` (SimPy's `AnyOf`) for two events not yet triggered, without the `Condition`: an event
    that succeeds when the first of them is processed, as the condition would, so whoever waits for
    it resumes at the same place in the schedule. The waiter gets no value."""
    first = simpy.Event(env)

    def relay(_event: simpy.Event) -> None:
        if first._value is simpy.events.PENDING:  # not yet triggered by the other
            first.succeed()

    a.callbacks.append(relay)
    b.callbacks.append(relay)
    return first
