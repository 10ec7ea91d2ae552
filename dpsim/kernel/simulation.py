"""One simulation: build the cluster from a scenario, drive agents through it, collect results.

Actors (SimPy processes): one per agent (its turns, one after another), one per prefill EP group
and one per decode EP group. The network (`dpsim.kernel.resources.net`) is passive. The global scheduler is not a
process: `dispatch()` runs whenever something it depends on changes (an arrival, a finished prefill,
freed decode HBM) and places queued requests in FIFO order until the policy says stop.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np
import simpy

from dpsim.kernel import de_bypass, dram_tier, loop
from dpsim.kernel.engines.decode import DecodeGroup
from dpsim.kernel.engines.prefill import PrefillGroup
from dpsim.kernel.engines.roles import RoleController
from dpsim.kernel.entities import DecodeEngine, PrefillEngine, ReadSide, Request
from dpsim.kernel.policies.deadline import DeadlineScheduler, enqueue_by_deadline
from dpsim.kernel.policies.prefill_pool import PrefillPool
from dpsim.kernel.policies.scheduler import SCHEDULERS, Scheduler, SchedulerInputs
from dpsim.kernel.policies.split_reads import balanced_de_share, side_of_share
from dpsim.kernel.resources.elements import Link
from dpsim.kernel.resources.gpu import GpuModel
from dpsim.kernel.resources.hardware import Cluster, Node
from dpsim.kernel.resources.net import TrafficClass
from dpsim.kernel.task import Task, soon
from dpsim.scenario.config import DispatchOrder, ReadSplit, RoleSwitching, Scenario
from dpsim.workload.trajectory import Trajectory


class SimulationError(Exception):
    """A scenario that cannot run as configured (e.g. a request larger than HBM)."""


class Simulation:
    """Everything one run needs. It is the engines' `SimContext` (dpsim.kernel.context); `simulate()`
    runs it, and `dpsim.metrics.results.collect` turns the finished simulation into a `Result`."""

    def __init__(self, scenario: Scenario, trajectories: list[Trajectory], progress: bool | None = None):
        self.scenario = scenario
        self.switches = scenario.effective_policy()
        self.model = scenario.model.spec()
        self.env = loop.Environment()
        self.block_bytes = scenario.policy.block_tokens * self.model.kv_bytes_per_token
        self.cluster = Cluster(self.env, scenario, self.block_bytes)
        self.env.drive(self.cluster.net)  # the network's wake-ups run in the env's loop (dpsim.kernel.loop)
        self.trajectories = trajectories
        self.requests: list[Request] = []
        self.queue: deque[Request] = deque()
        # Bumped whenever a prefill engine's load falls or the prefill pool gains engines: the only
        # changes that can turn the scheduler's prefill_available from False to True, so `dispatch`
        # skips asking again (an O(engines) scan) until one happens.
        self.prefill_pool_version = 0
        self._prefill_full_at = -1  # the version at which prefill_available last said False
        self.turns_total = sum(len(t.turns) for t in trajectories)
        self.turns_finished = 0
        self.trajectory_end: dict[str, float] = {}
        self.trajectory_start: dict[str, float] = {}
        self.stop_reason: str | None = None
        self._progress_wanted = progress
        self._bar = None
        self._build_engines()
        self.decode_pool = list(self.decode_groups)  # decode groups open for placement (all, unless roles switch)
        self.roles = (None if scenario.policy.adaptive_pd.mode is RoleSwitching.FIXED
                      else RoleController(self, SimulationError))  # docs/whatif.md#4-adaptive-prefilldecode-roles
        self._check_fits()
        self.scheduler = self._make_scheduler()
        self.dram_tier = dram_tier.make_dram_tier(scenario, self.cluster, self.block_bytes, self.switches.free_io)

    # ------------------------------------------------------------------------------ construction
    def _groups(self, nodes: list[Node], ep_nodes: int) -> list[list[Node]]:
        if not self.model.moe:
            return [[n] for n in nodes]  # dense model: every GPU is its own data-parallel engine
        count = math.ceil(len(nodes) / ep_nodes)
        return [list(chunk) for chunk in np.array_split(np.array(nodes, dtype=object), count)]

    def _gpu_model(self, group_gpus: int) -> GpuModel:
        weights = self.model.weights_bytes / (group_gpus if self.model.moe else 1)
        return GpuModel(self.model, self.scenario.hardware.gpu, group_gpus, weights)

    def _hbm_for_kv(self, gpu: GpuModel, role: str) -> float:
        hw = self.scenario.hardware.gpu
        free = hw.hbm_capacity - gpu.weights_bytes_per_gpu - hw.hbm_reserved
        if free <= 0:
            raise SimulationError(
                f"{role} GPU has no HBM left for KV: {hw.hbm_capacity / 1e9:.0f} GB HBM - "
                f"{gpu.weights_bytes_per_gpu / 1e9:.1f} GB weights - {hw.hbm_reserved / 1e9:.0f} GB reserved")
        return free

    def _build_engines(self) -> None:
        cl = self.scenario.cluster
        self.prefill_groups, self.prefill_engines = self._make_groups(
            self.cluster.prefill_nodes, cl.prefill_ep_nodes, PrefillGroup, PrefillEngine, "prefill")
        self.decode_groups, self.decode_engines = self._make_groups(
            self.cluster.decode_nodes, cl.decode_ep_nodes, DecodeGroup, DecodeEngine, "decode")
        self.prefill_pool = PrefillPool(self.prefill_engines)  # the prefill engines open for placement

    def _make_groups(self, nodes: list[Node], ep_nodes: int, group_cls, engine_cls, role: str):
        """EP groups of `ep_nodes` nodes for MoE models (all their GPUs in lockstep); one group per
        GPU for dense models (data parallel)."""
        g = self.scenario.cluster.gpus_per_node
        groups: list = []
        engines: list = []
        for node_set in self._groups(nodes, ep_nodes):
            members = [(n, i) for n in node_set for i in range(g)]
            for group_members in ([members] if self.model.moe else [[m] for m in members]):
                gpu = self._gpu_model(len(group_members))
                group = group_cls(self, len(groups), len(node_set), gpu)
                hbm = self._hbm_for_kv(gpu, role)
                for node, i in group_members:
                    engine = engine_cls(len(engines), node, i, group, hbm)
                    group.engines.append(engine)
                    engines.append(engine)
                groups.append(group)
        return groups, engines

    def _check_fits(self) -> None:
        kv = self.model.kv_bytes_per_token
        largest = max((t.input_tokens + t.output_tokens for tr in self.trajectories for t in tr.turns), default=0)
        de_hbm = min(e.hbm_free for e in self.decode_engines)
        if largest * kv > de_hbm:
            raise SimulationError(f"a turn of {largest} tokens needs {largest * kv / 1e9:.1f} GB of KV, more than a "
                                  f"decode GPU's {de_hbm / 1e9:.1f} GB of free HBM")
        if largest * kv > self.scenario.hardware.host.dram_buffer:
            raise SimulationError(f"a turn of {largest} tokens needs {largest * kv / 1e9:.1f} GB of KV, more than "
                                  f"the {self.scenario.hardware.host.dram_buffer / 1e9:.0f} GB DRAM buffer")
        pe_hbm = min(e.hbm_free for e in self.prefill_engines)
        if not self.switches.layerwise and largest * kv > pe_hbm:
            raise SimulationError(f"whole-prompt prefill of {largest} tokens needs {largest * kv / 1e9:.1f} GB of "
                                  f"HBM, more than a prefill GPU's {pe_hbm / 1e9:.1f} GB")

    def _make_scheduler(self) -> Scheduler:
        sw, policy = self.switches, self.scenario.policy
        if policy.dispatch_order is not DispatchOrder.FIFO and sw.scheduler != "dualpath":
            raise SimulationError(f"{self.scenario.source_path or '<scenario>'}: policy.dispatch_order = "
                                  f"{policy.dispatch_order.value}: needs the dualpath scheduler (policy.scheduler: "
                                  "dualpath, the default of systems dualpath and oracle), not round_robin")
        kv = self.model.kv_bytes_per_token
        turns = [t for tr in self.trajectories for t in tr.turns] or None
        cached = int(np.mean([t.cached_tokens for t in turns])) if turns else 0
        new = max(1, int(np.mean([t.new_tokens for t in turns]))) if turns else 1
        alpha = policy.alpha * self.cluster.storage_read_rate / kv
        beta = policy.beta * self.prefill_groups[0].gpu.prefill_tokens_per_s(cached, new)
        self.alpha_tokens, self.beta_tokens = alpha, beta
        if policy.dispatch_order is DispatchOrder.DEADLINE:  # docs/whatif.md#6-tail-aware-scheduling
            return DeadlineScheduler(alpha, beta, alpha / policy.alpha, beta / policy.beta, policy.z_slack,
                                     dual_path=sw.dual_path)
        return SCHEDULERS[sw.scheduler](SchedulerInputs(alpha, beta, policy.z_slack, sw.dual_path))

    # ------------------------------------------------------------------------------------ actors
    def move(self, path: list[Link], size_bytes: float, tag: str, done: simpy.Event | None = None) -> simpy.Event:
        """A KV transfer on the low class (free for the Oracle, which has no I/O cost); `done`: a
        `dpsim.kernel.resources.countdown.Countdown` it counts down instead of an event of its own."""
        event = self.cluster.net.transfer([] if self.switches.free_io else path, size_bytes, TrafficClass.LOW,
                                          tag=tag, done=done)
        assert event is not None
        return event

    def move_unobserved(self, path: list[Link], size_bytes: float, tag: str) -> None:
        """`move` for a transfer nobody waits for: no event at all."""
        self.cluster.net.transfer([] if self.switches.free_io else path, size_bytes, TrafficClass.LOW, tag=tag,
                                  notify=False)

    def de_buffer_tokens(self, req: Request) -> int:
        """Tokens of the request's KV that gather in the DE node's buffer: the whole prompt, or only
        a DE-side hit with the DE-buffer bypass (docs/whatif.md#3-de-buffer-bypass-gpudirect-rdma-into-decode-hbm)."""
        return de_bypass.de_buffer_tokens(req) if self.scenario.policy.de_bypass else req.turn.input_tokens

    def release_buffer(self, node: Node, size: float) -> None:
        if not self.switches.free_io:
            node.buffer.release(size)

    def add_prefill_engines(self, engines: Iterable[PrefillEngine]) -> None:
        """Open `engines` for placement (a node switched to prefill): a blocked dispatch may go on."""
        self.prefill_pool.extend(engines)
        self.prefill_pool_version += 1

    def prefill_done(self, engine: PrefillEngine, req: Request) -> None:
        """`req` has left prefill engine `engine`: its load falls (and a blocked dispatch may go on)."""
        engine.tok -= req.turn.input_tokens
        engine.seq -= 1
        self.prefill_pool.load_changed(engine)
        self.prefill_pool_version += 1

    def release_pe_buffer(self, req: Request) -> None:
        """Free the PE-side buffer that holds the request's hit KV (once: read_hit_kv took it)."""
        if req.pe_buffer_held:
            req.pe_buffer_held = False
            pe_part = req.turn.cached_tokens - req.hit_tokens_de
            self.release_buffer(req.read_node, pe_part * self.model.kv_bytes_per_token)

    def _agent(self, trajectory: Trajectory, arrival_s: float):
        env = self.env
        yield simpy.Timeout(env, arrival_s)
        self.trajectory_start[trajectory.id] = env.now
        for index, turn in enumerate(trajectory.turns):
            if index and turn.think_time_s:
                yield simpy.Timeout(env, turn.think_time_s)
            req = Request(len(self.requests), trajectory.id, index, turn, simpy.Event(env), env.now)
            self.requests.append(req)
            self.queue.append(req)
            self.dispatch()
            yield req.done
        self.trajectory_end[trajectory.id] = env.now

    def dispatch(self) -> None:
        """Place queued requests in FIFO order until the policy finds no engine for the head."""
        kv = self.model.kv_bytes_per_token
        while self.queue:
            req = self.queue[0]
            if self._prefill_full_at == self.prefill_pool_version:
                return  # no PE has room, and none has gained any since the scheduler said so
            if not self.scheduler.prefill_available(self.prefill_pool):
                self._prefill_full_at = self.prefill_pool_version
                return  # the head waits for a PE anyway: skip the decode-side search
            hbm = (req.turn.input_tokens + req.turn.output_tokens) * kv
            de = self.scheduler.pick_decode(self.decode_pool, req.turn.input_tokens, hbm)
            if de is None:
                return
            pe = self.scheduler.pick_prefill(self.prefill_pool)
            if pe is None:
                return
            self.queue.popleft()
            req.pe, req.de, req.t_dispatch = pe, de, self.env.now
            self._choose_read_side(req, pe, de)
            pe.tok += req.turn.input_tokens
            pe.seq += 1
            self.prefill_pool.load_changed(pe)
            de.tok += req.turn.input_tokens + req.turn.output_tokens
            de.group.tok += req.turn.input_tokens + req.turn.output_tokens
            de.seq += 1
            de.hbm_free -= hbm
            if self.dram_tier is not None:  # docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage
                req.tier_hit_tokens = self.dram_tier.lookup(req)
                req.read_node.read_queue_tokens += req.turn.cached_tokens - req.tier_hit_tokens
            else:
                pe.node.read_queue_tokens += req.turn.cached_tokens - req.hit_tokens_de
                de.node.read_queue_tokens += req.hit_tokens_de
            Task(self.env, self._load(req))  # nobody waits for it: no end event (dpsim.kernel.task)

    def _choose_read_side(self, req: Request, pe: PrefillEngine, de: DecodeEngine) -> None:
        """The whole hit on the side the scheduler picks, or (policy.read_split: balanced, with dual
        paths) a share on each side from both read queues (docs/whatif.md, section 2: split reads)."""
        hit = req.turn.cached_tokens
        if hit and self.switches.dual_path and self.scenario.policy.read_split is ReadSplit.BALANCED:
            req.hit_tokens_de = balanced_de_share(pe.node.read_queue_tokens, de.node.read_queue_tokens, hit,
                                                  self.scenario.policy.block_tokens)
            req.read_side = side_of_share(req.hit_tokens_de, hit)
        else:
            req.read_side = self.scheduler.pick_read_side(pe, de) if hit else ReadSide.PREFILL
            req.hit_tokens_de = hit if req.read_side is ReadSide.DECODE else 0
        req.read_node = de.node if req.read_side is ReadSide.DECODE else pe.node  # a split's PE part: PE buffer

    def _load(self, req: Request):
        """Reserve the DE node's buffer, read the hit KV ahead or leave the read to the prefill engine's
        loader (whole-prompt prefill with whole_prompt_kv_read=at_pass or next_pass), then queue the
        request at its PE."""
        if not self.switches.free_io:
            # Everything that will land in the DE node's buffer (the whole prompt's KV), reserved up
            # front so that a hand-off can never wait for buffer space (no deadlock).
            t_wait = self.env.now
            yield req.de.node.buffer.allocate(self.de_buffer_tokens(req) * self.model.kv_bytes_per_token)
            req.alloc_wait_s += self.env.now - t_wait
        if not self.switches.kv_read.by_prefill_engine:
            yield from self.read_hit_kv(req)
        if self.scenario.policy.dispatch_order is DispatchOrder.DEADLINE:
            enqueue_by_deadline(req.pe.ready, req)
        else:
            req.pe.ready.append(req)
        req.pe.group.wake()

    def read_hit_kv(self, req: Request):
        """Process body: reserve the read side's buffer (PE side) and read the request's hit KV from
        storage into it. The PE-side buffer is held until the request's prefill releases it."""
        kv = self.model.kv_bytes_per_token
        node = req.read_node
        pe_hit = req.turn.cached_tokens - req.hit_tokens_de
        if not self.switches.free_io and req.read_side is not ReadSide.DECODE and pe_hit:
            t_wait = self.env.now
            yield node.buffer.allocate(pe_hit * kv)
            req.alloc_wait_s += self.env.now - t_wait
            req.pe_buffer_held = True
        req.t_read_start = self.env.now
        if self.dram_tier is not None:  # docs/whatif.md#1-a-dram-cache-tier-in-front-of-storage
            yield from dram_tier.read_hit_kv(self, req)
            req.t_read_end = self.env.now
            return
        if req.turn.cached_tokens and not self.switches.free_io:
            if req.read_side is ReadSide.SPLIT:  # both parts at once, each on its own node
                yield self.env.all_of([
                    self.env.process(self._read_part(req.pe.node, pe_hit, "storage_read_pe_side")),
                    self.env.process(self._read_part(req.de.node, req.hit_tokens_de, "storage_read_de_side"))])
            else:
                tag = "storage_read_pe_side" if req.read_side is ReadSide.PREFILL else "storage_read_de_side"
                yield from self._read_part(node, req.turn.cached_tokens, tag)
        else:
            req.pe.node.read_queue_tokens -= pe_hit
            req.de.node.read_queue_tokens -= req.hit_tokens_de
        req.t_read_end = self.env.now

    def _read_part(self, node: Node, tokens: int, tag: str):
        """Process body: read `tokens` of hit KV from storage into `node`'s buffer."""
        # A client reads its queued requests' blocks in submission order, so requests finish
        # roughly FIFO rather than all together: a few requests in flight per node. A request is in
        # flight from submission to its last byte, so its fixed latency (metadata lookup, RPC) holds
        # the slot (docs/modeling.md#storage-service).
        slots = node.read_slots
        yield slots.request()
        if self.cluster.request_latency_s:
            yield simpy.Timeout(self.env, self.cluster.request_latency_s)
        yield self.move(self.cluster.storage_read_path(node), tokens * self.model.kv_bytes_per_token, tag)
        slots.release()
        node.read_queue_tokens -= tokens

    def hand_over(self, req: Request, kv_sent: simpy.Event) -> None:
        """The prefill is done: the request's decode group copies its KV in once `kv_sent` fires."""
        group = self.decode_groups[req.de.group.index]
        self.call_soon(lambda: group.hand_over(req, kv_sent))

    def finish(self, req: Request) -> None:
        """The last token is out: free decode HBM, write back the new KV, wake the agent."""
        kv = self.model.kv_bytes_per_token
        de = req.de
        req.t_finish = self.env.now
        de.hbm_free += (req.turn.input_tokens + req.turn.output_tokens) * kv
        de.tok -= req.turn.input_tokens + req.turn.output_tokens
        de.group.tok -= req.turn.input_tokens + req.turn.output_tokens
        de.seq -= 1
        self.turns_finished += 1
        if self._bar is not None:
            self._bar.update(1)
        self.call_soon(lambda: self._write_back(req))
        req.done.succeed()
        self.dispatch()

    def call_soon(self, action: Callable[[], None]) -> None:
        """Run `action` later in this instant, where a new SimPy process would take its first step (an
        urgent event). Chains of transfers use it with callbacks instead of a process per chain:
        the same order of events, without a generator and its end event."""
        soon(self.env, lambda _event: action())

    def _write_back(self, req: Request) -> None:
        """The turn's new KV goes back to storage: D2H through the compute NIC, then the storage write."""
        node, size = req.de.node, (req.turn.new_tokens + req.turn.output_tokens) * self.model.kv_bytes_per_token
        if self.dram_tier is not None:
            self.dram_tier.store(req)  # in the pool from now on: the trajectory's next turn may come at once
        d2h = self.move(self.cluster.loopback_path(node, req.de.gpu), size, "kv_d2h_de")

        def write(_event: simpy.Event) -> None:
            self.move_unobserved(self.cluster.storage_write_path(node), size, "storage_write")
            if self.dram_tier is not None:
                dram_tier.write_back_copy(self, req)  # a copy to the pool's owner (dpsim.kernel.dram_tier)

        d2h.callbacks.append(write)

    def extra_summary(self, done) -> dict:
        """Summary entries of the what-if options that are on (docs/whatif.md); empty when all are off,
        so a run with them off summarises exactly as before. `done`: the finished turns' frame."""
        extra: dict = {}
        if self.scenario.policy.read_split is not ReadSplit.WHOLE:
            hit = float(done.cached_tokens.sum())
            extra["hit_fraction_de"] = round(float(done.hit_tokens_de.sum()) / hit, 9) if hit else None
            split = (done.read_side == ReadSide.SPLIT).mean() if len(done) else None
            extra["read_side_fraction_split"] = None if split is None else round(float(split), 9)
        if self.roles is not None:
            extra.update(self.roles.summary(float(done.t_finish.max()) if len(done) else self.env.now))
        return extra

    # --------------------------------------------------------------------------------------- run
    def _monitor(self, stop_rule, check_every_s: float):
        """Ask the stop rule every `check_every_s`; end the run on a reason or when all turns are done."""
        while self.turns_finished < self.turns_total:
            yield self.env.timeout(check_every_s)
            if self.env.peek() == math.inf:
                break  # nothing else can happen (a stuck run): let the invariants report it
            reason = stop_rule(self)
            if reason:
                self.stop_reason = str(reason)
                break
        self._stopped.succeed()

    def simulate(self, arrivals_s: list[float], stop_rule: Callable[[Simulation], str | None] | None = None,
                 check_every_s: float = 10.0) -> float:
        """Simulate until every turn is done (or run.max_sim_time). `stop_rule(sim)` is called every
        `check_every_s` simulated seconds; a non-empty return ends the run early and is recorded as
        `stop_reason` (e.g. an SLO break or steady state in a capacity search). Returns the wall
        seconds it took; `dpsim.metrics.results.collect(sim, wall_s)` makes the `Result`."""
        show = self._progress_wanted
        if show is None:
            show = self.scenario.run.progress  # run.progress in the scenario; unset: only on a terminal
        if show is None:
            show = sys.stderr.isatty()
        if show:
            from tqdm import tqdm
            self._bar = tqdm(total=self.turns_total, unit="turn", file=sys.stderr, delay=2.0, leave=False)
        for group in self.prefill_groups + self.decode_groups:
            group.start()
        for trajectory, arrival in zip(self.trajectories, arrivals_s, strict=True):
            self.env.process(self._agent(trajectory, arrival))
        if self.roles is not None:
            self.env.process(self.roles.run())
        if stop_rule is not None:
            self._stopped = self.env.event()
            self.env.process(self._monitor(stop_rule, check_every_s))
        wall0 = time.perf_counter()
        until = self.scenario.run.max_sim_time
        if stop_rule is not None:
            ends = [self._stopped] + ([self.env.timeout(until)] if until is not None else [])
            self.env.run(until=self.env.any_of(ends))
        else:
            self.env.run(until=until)
        wall_s = time.perf_counter() - wall0
        if self._bar is not None:
            self._bar.close()
        self.cluster.net.flush()
        return wall_s
