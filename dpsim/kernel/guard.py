"""The time guard: a run whose simulated time or event count passes a bound set from the scenario
stops with a clear message instead of hanging (docs/validation-of-inputs.md#the-time-guard).

Validation (`dpsim.scenario.config`) already refuses quantities outside physical ranges; the guard is the
backstop for combinations that are each in range but together would take forever to simulate (a
1 kB/s NIC under a 64K-token workload, a livelock).

The bounds are generous on purpose, so that no valid run can reach them:

* simulated time: ``SLACK`` x the time the whole workload would take if every turn ran alone, one
  after another, on the slowest link and a single GPU of its group (prefill pass, one decode step
  per output token, both at the trajectory's largest prompt and context; every KV byte moved
  ``COPIES`` times over the slowest link, the per-block I/O costs and the think time), plus the last
  arrival. A work-conserving cluster
  never does worse than this serial schedule.
* simulated time is also capped at ``MAX_BINS`` time bins of ``run.bin`` (11.6 days at 1 s): the
  links record their traffic per bin, so a longer run costs memory and time however idle it is.
* events: ``EVENTS_PER_TURN`` per turn plus ``EVENTS_PER_TOKEN`` per output token (a normal run
  takes about 35 events per turn and one decode step per output token at worst).
"""

from __future__ import annotations

import math

from dpsim.kernel.simulation import Simulation, SimulationError

SLACK = 100.0
MARGIN_S = 60.0  # added to the time bound: a start-up allowance for tiny workloads
COPIES = 6  # storage read, host-to-GPU, GPU-to-GPU transfer, GPU-to-host, storage write, one spare
EVENTS_PER_TURN = 1_000
EVENTS_PER_TOKEN = 20
EVENTS_MIN = 100_000
MAX_BINS = 1_000_000  # time bins of run.bin per link: the links' traffic record grows with them


class GuardTripped(SimulationError):
    """The run passed its time guard (simulated time or events): something in the scenario makes it
    far slower than any real cluster."""


def serial_time_s(sim: Simulation) -> float:
    """Seconds the workload takes if every turn ran alone on the slowest resources (see above), or
    more: the GPU terms of each turn are taken at its trajectory's largest prompt, hit and context
    (both GPU times grow with them), so the GPU model runs twice per trajectory instead of twice per
    turn (at 48P96D, 5.2 M turns, the per-turn version took ~50 s before the run started)."""
    hw = sim.scenario.hardware
    model = sim.model
    prefill_gpu = sim.prefill_groups[0].gpu
    decode_gpu = sim.decode_groups[0].gpu
    slowest_link = min(link.capacity for link in sim.cluster.net.links)
    slowest_link *= min(hw.storage.read_efficiency, 1.0)
    if hw.storage.aggregate_bandwidth:
        slowest_link = min(slowest_link, hw.storage.aggregate_bandwidth)
    block_tokens = sim.scenario.policy.block_tokens
    per_block_s = (hw.storage.io_overhead + hw.storage.request_latency + hw.compute_nic.latency
                   + hw.gpu.copy_submit_overhead) * model.layers
    kv = model.kv_bytes_per_token
    total = 0.0
    for trajectory in sim.trajectories:
        turns = trajectory.turns
        if not turns:
            continue
        cached = max(turn.cached_tokens for turn in turns)
        new = max(turn.new_tokens for turn in turns)
        context = max(turn.input_tokens + turn.output_tokens for turn in turns)
        tokens = sum(turn.input_tokens + turn.output_tokens for turn in turns)
        outputs = sum(turn.output_tokens for turn in turns)
        decode_step_s = decode_gpu.decode_step([model.decode_kv_read_bytes(context)], [1],
                                               [model.decode_attention_flops(context)])
        total += (len(turns) * prefill_gpu.prefill_pass([[(cached, new)]]).seconds
                  + outputs * decode_step_s
                  + COPIES * tokens * kv / slowest_link
                  + (tokens / block_tokens + len(turns)) * per_block_s * COPIES
                  + sum(turn.think_time_s for turn in turns))
    return total


def bounds(sim: Simulation, arrivals_s: list[float]) -> tuple[float, int]:
    """(simulated seconds, events) a run of `sim` may take before the guard stops it."""
    output_tokens = sum(t.output_tokens for tr in sim.trajectories for t in tr.turns)
    max_events = EVENTS_MIN + EVENTS_PER_TURN * sim.turns_total + EVENTS_PER_TOKEN * output_tokens
    return max(arrivals_s, default=0.0) + SLACK * serial_time_s(sim) + MARGIN_S, max_events


CHECK_EVERY = 256  # events between two checks: a run passes its bound by at most this many events


def install(sim: Simulation, arrivals_s: list[float]) -> None:
    """Make `sim`'s run loop check that the run stays inside its bounds; past them it raises GuardTripped
    (a SimulationError: the CLIs print it as one line). The checks sit in the run loop
    (`dpsim.kernel.loop.run`) rather than around every step: the simulated-time bounds after every
    event past them, everything every CHECK_EVERY events."""
    time_bound_s, max_events = bounds(sim, arrivals_s)
    if sim.scenario.run.max_sim_time is not None:  # the run stops there by itself (at most 1e7 s)
        time_bound_s = max(time_bound_s, sim.scenario.run.max_sim_time)
    bins_bound_s = MAX_BINS * sim.scenario.run.bin
    env = sim.env

    def check(events: int) -> None:
        next_event_s = env.peek()
        if next_event_s < math.inf and events > max_events:
            _trip(sim, f"{events - 1:,} events (bound {max_events:,})")
        at_s = env.now if next_event_s == math.inf else max(env.now, next_event_s)
        if at_s > time_bound_s:
            _trip(sim, f"{at_s:.4g} simulated seconds (bound {time_bound_s:.4g} s)")
        if at_s > bins_bound_s:
            _trip(sim, f"{at_s:.4g} simulated seconds, more than {MAX_BINS:,} time bins of "
                       f"run.bin = {sim.scenario.run.bin:g} s (raise run.bin for a run this long)")

    env.check = check  # the run loop calls it (dpsim.kernel.loop)
    env.check_every = CHECK_EVERY
    env.check_after_s = min(time_bound_s, bins_bound_s)


def _trip(sim: Simulation, what: str) -> None:
    raise GuardTripped(
        f"the run passed its time guard at {what} with {sim.turns_finished:,} of {sim.turns_total:,} turns "
        "done; check the bandwidths, efficiencies and time scales of the scenario")
