"""Benchmark: simulated turns per wall-second, as a ratio to a bare SimPy event loop timed in the same run.

    python -m dpsim.bench [SCENARIO] [--set k=v ...] [--systems basic,dualpath] [--repeat 3]
    python -m dpsim.bench --paper [--only SLICE,...] [--repeat 3] [--write docs/data/bench-paper.csv]
    python -m dpsim.bench SCENARIO --profile      # where the time goes, by layer (cProfile)
    python -m dpsim.bench SCENARIO --census [--census-every 1.0]   # what the rate solver is given

The bare loop is the floor of any SimPy simulator: processes that do nothing but wait on timeouts.
It is timed just before and just after every run (their mean: a shared machine's pace drifts
during a run of several seconds), so "turns per bare event" (turns/s over bare events/s) is
comparable across machines. Both are timed in this process's CPU seconds (`time.process_time`), so
that other work on a shared machine does not count (on an idle core they equal wall seconds). Figures are the median and the
worst of `--repeat` runs. `--paper` runs the quickstart, small slices of the paper's DS 660B,
DS 27B and Qwen 32B scenarios and a replay of the shipped Claude Code sample (a few minutes in pure
Python); `dpsim reproduce --list` and the estimate printed before long runs (`dpsim.planning.run_estimate`)
turn its figures (`--write`) into wall-time estimates.

`--census` measures what the rate solver works on: flows per solve (the network's own counters), and
the flows in flight, sampled every `--census-every` simulated seconds, by path group (the same links
in the same order, the same class and the same cap: under max-min every flow of a group gets the same
rate). A solver that treated each group as one variable (issue 15's first direction) pays only where
groups are large; docs/reproduce.md, "Path groups", gives the figures on the paper's scenarios.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dpsim import api
from dpsim.kernel.resources import net
from dpsim.kernel.resources.elements import Flow
from dpsim.kernel.simulation import Simulation
from dpsim.planning.run_estimate import FIGURE_COLUMNS, bare_simpy_events_per_s, read_figures, workload_kind

SYSTEMS = ("basic", "dualpath", "oracle")
# The --paper slices: the scenario file and the overrides that shrink it to seconds per run.
PAPER_SLICES = {
    "quickstart": ("scenarios/quickstart.yaml", []),
    "ds660b-2p4d-64k": ("scenarios/paper/ds660b-2p4d.yaml", ["workload.mal=64K", "workload.agents=128",
                                                             "workload.max_turns=24"]),
    "ds27b-1p1d-48k": ("scenarios/paper/ds27b-1p1d.yaml", ["workload.mal=48K", "workload.agents=256",
                                                          "workload.max_turns=12"]),
    "qwen32b-1p2d-64k": ("scenarios/paper/qwen32b-1p2d.yaml", ["workload.mal=64K", "workload.agents=64",
                                                              "workload.max_turns=40"]),
    # A real agentic trace replayed online: long contexts and large appends cost several times more per
    # turn than the synthetic sets (more prefill chunks and transfers), so trace replays get their own figure.
    # The shipped Claude Code sample, cut at DS 660B's 128K window, 64 sessions drawn from it arriving at 0.45/s.
    "ds660b-2p4d-claude-code": ("scenarios/paper/ds660b-2p4d.yaml", [
        "workload.trace=traces/native/claude_code_sample.dpsim.jsonl", "workload.mode=online", "workload.aps=0.45",
        "workload.max_context=128K", "workload.agents=64"]),
}
@dataclass
class Measured:
    name: str
    model: str
    system: str
    turns: int
    events: int  # SimPy events processed
    wakeups: int  # network wake-ups the run loop ran instead of events (dpsim.kernel.loop)
    flows: int
    walls_s: list[float]
    per_bare_event: list[float]  # turns/s over bare events/s, one per run

    trace: bool = False  # a trace replay (else a synthetic set)

    def row(self) -> dict:
        return {"slice": self.name, "model": self.model, "system": self.system, "workload": workload_kind(self.trace),
                "compiled": bool(net.COMPILED),
                "turns": self.turns, "runs": len(self.walls_s),
                "turns_per_bare_event_median": f"{statistics.median(self.per_bare_event):.5f}",
                "turns_per_bare_event_worst": f"{min(self.per_bare_event):.5f}"}

    def line(self) -> str:
        walls, ratios = self.walls_s, self.per_bare_event
        return (f"{self.name:18s} {self.system:9s} {self.turns:7d} turns  CPU {statistics.median(walls):7.2f} s "
                f"(worst {max(walls):7.2f})   {self.turns / statistics.median(walls):7,.0f} turns/s  "
                f"turns per bare event {statistics.median(ratios):.4f} (worst {min(ratios):.4f})  "
                f"{self.events / self.turns:5.1f} events + {self.wakeups / self.turns:4.1f} wake-ups/turn  "
                f"{self.flows / self.turns:4.1f} flows/turn")


def measure(name: str, scenario, system: str, repeat: int) -> Measured:
    sc = api.with_overrides(scenario, policy={"system": system})
    trajectories = api.build_workload(sc)
    walls, ratios = [], []
    for _ in range(repeat):
        before = bare_simpy_events_per_s()
        t0 = time.process_time()
        result = api.run(sc, trajectories, progress=False)
        wall = time.process_time() - t0
        bare = (before + bare_simpy_events_per_s()) / 2  # the machine's pace drifts during a run
        walls.append(wall)
        ratios.append(result.summary["turns"] / wall / bare)
    info = result.run_info
    return Measured(name, sc.model.name, system, result.summary["turns"], info["simpy_events"], info["network_wakeups"],
                    info["flows"], walls, ratios, trace=bool(sc.workload.trace))


def path_groups(flows: Iterable[Flow]) -> Counter:
    """Flows by path group: the same links in the same order, the same class and the same cap."""
    return Counter((tuple(link.index for link in flow.path), flow.traffic_class, flow.max_rate) for flow in flows)


def flows_in_flight(network: net.Network) -> list[Flow]:
    """Every flow started and not finished, once each (a flow sits on each link of its path)."""
    seen: dict[Flow, None] = {}
    for link in network.links:
        for flow in link.flows:
            seen[flow] = None
    return list(seen)


@dataclass
class Census:
    name: str
    system: str
    turns: int = 0
    solves: int = 0  # the network's re-rates and their redos (Network.recomputations + split_fallbacks)
    flows_solved: int = 0  # flows handed to the solver, summed over the solves
    samples: int = 0  # samples with at least one flow in flight
    flows: int = 0  # summed over the samples
    groups: int = 0
    shared: int = 0  # flows in a group of two or more
    largest: int = 0

    def add(self, groups: Counter) -> None:
        if groups:
            self.samples += 1
            self.flows += sum(groups.values())
            self.groups += len(groups)
            self.shared += sum(n for n in groups.values() if n > 1)
            self.largest = max(self.largest, max(groups.values()))

    def line(self) -> str:
        solver = (f"{self.name:18s} {self.system:9s} {self.turns:7d} turns  {self.solves / max(self.turns, 1):4.1f} "
                  f"solves/turn, {self.flows_solved / max(self.solves, 1):5.1f} flows per solve")
        if not self.samples:
            return solver + "  (no flow in flight at any sample)"
        return (f"{solver}  in flight: {self.flows / self.samples:6.1f} flows in {self.groups / self.samples:6.1f} "
                f"path groups ({self.flows / self.groups:.2f} flows a group, largest {self.largest}; "
                f"{self.shared / self.flows:.0%} of flows share a group)")


def census(name: str, scenario, system: str, every_s: float) -> Census:
    """One run that samples the flows in flight every `every_s` simulated seconds (reading only)."""
    sc = api.with_overrides(scenario, policy={"system": system})
    trajectories = api.build_workload(sc)
    sim = Simulation(sc, trajectories, progress=False)
    network = sim.cluster.net
    tally = Census(name, system)

    def sample(_sim: Simulation) -> None:  # a stop rule that never stops the run: it only reads
        tally.add(path_groups(flows_in_flight(network)))

    sim.simulate(api.arrival_times(sc, trajectories), stop_rule=sample, check_every_s=every_s)
    tally.turns = sim.turns_finished
    tally.solves = network.recomputations + network.split_fallbacks
    tally.flows_solved = network.flows_solved
    return tally


def profile_layers(scenario, system: str) -> None:
    """One run under cProfile; self time by layer (a builtin's time goes to the layer that called it)."""
    import cProfile
    import pstats

    sc = api.with_overrides(scenario, policy={"system": system})
    trajectories = api.build_workload(sc)
    bare = bare_simpy_events_per_s()
    t0 = time.process_time()
    turns = api.run(sc, trajectories, progress=False).summary["turns"]
    wall = time.process_time() - t0
    profiler = cProfile.Profile()
    profiler.runcall(api.run, sc, trajectories, progress=False)
    by_layer: dict[str, float] = {}
    for func, (_, _, self_s, _, callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        layer = _layer(func[0])
        if layer is not None:
            by_layer[layer] = by_layer.get(layer, 0.0) + self_s
            continue
        for caller, edge in (callers or {}).items():  # builtins and others: to their callers' layers
            by_layer[_layer(caller[0]) or "other"] = by_layer.get(_layer(caller[0]) or "other", 0.0) + edge[2]
    total = sum(by_layer.values())
    print(f"{sc.name} {system}: {turns} turns in {wall:.2f} CPU s unprofiled = {turns / wall / bare:.4f} turns per bare "
          f"event ({bare:,.0f} bare events/s); bare-event times per turn, by layer (cProfile shares):")
    for layer, seconds in sorted(by_layer.items(), key=lambda item: -item[1]):
        share = seconds / total
        print(f"  {layer:24s} {share * 100:5.1f} %  {share * wall / turns * bare:7.1f} bare events/turn")
    if net.COMPILED:
        print("  (compiled network: its time shows in the layers that call it, mostly simpy and simulator)")


def _layer(filename: str) -> str | None:
    path = filename.replace("\\", "/")
    if "/simpy/" in path:
        return "simpy event loop"
    if path.endswith(("dpsim/kernel/resources/net.py", "dpsim/kernel/resources/fluid.py")):
        return "network (net, fluid)"
    if "/dpsim/kernel/engines/" in path:
        return "engines"
    if path.endswith("dpsim/kernel/simulation.py") or "/dpsim/kernel/policies/" in path:
        return "simulator and scheduler"
    if path.endswith(("dpsim/kernel/resources/gpu.py", "dpsim/scenario/models.py", "dpsim/kernel/entities.py")):
        return "gpu model"
    return None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/quickstart.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma separated (default: all three)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per system (median and worst are printed)")
    parser.add_argument("--paper", action="store_true", help="the quickstart, the three paper slices and a trace replay")
    parser.add_argument("--only", default=None, help="with --paper: these slices only (comma separated); --write "
                                                     "then replaces only their rows")
    parser.add_argument("--write", type=Path, default=None, help="with --paper: CSV of the figures")
    parser.add_argument("--profile", action="store_true", help="one profiled run per system: time by layer")
    parser.add_argument("--census", action="store_true", help="one run per system: flows per solve, and the flows "
                                                              "in flight by path group")
    parser.add_argument("--census-every", type=float, default=1.0, metavar="SECONDS",
                        help="with --census: simulated seconds between samples (default 1.0)")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or args.repeat < 1:
        parser.error(f"--systems takes {', '.join(SYSTEMS)} (got {', '.join(unknown)}); --repeat at least 1"
                     if unknown else f"--repeat must be at least 1, got {args.repeat}")
    if (args.write or args.only) and not args.paper:
        parser.error("--write and --only go with --paper")
    if args.census and (args.write or args.profile or args.repeat > 1):
        parser.error("--census is one run of its own per system: not with --write, --profile or --repeat")
    if not args.census_every > 0 or args.census_every == float("inf"):
        parser.error(f"--census-every takes simulated seconds > 0, got {args.census_every}")
    slices = PAPER_SLICES if args.paper else {Path(args.scenario).stem: (args.scenario, [])}
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in PAPER_SLICES]
        if unknown or not names:
            parser.error(f"--only {args.only!r}: expected slices among {', '.join(PAPER_SLICES)}")
        slices = {n: PAPER_SLICES[n] for n in names}
    print(f"network solver: {'compiled' if net.COMPILED else 'pure Python'} (python -m dpsim.compiled status); "
          f"bare SimPy loop now: {bare_simpy_events_per_s():,.0f} timeout events/s")
    rows = []
    for name, (path, sets) in slices.items():
        scenario = api.load_scenario(path, sets + args.sets)
        for system in systems:
            if args.profile:
                profile_layers(scenario, system)
                continue
            if args.census:
                print(census(name, scenario, system, args.census_every).line(), flush=True)
                continue
            measured = measure(name, scenario, system, args.repeat)
            print(measured.line(), flush=True)
            rows.append(measured.row())
    if args.write:  # replaces the rows of this solver (compiled or pure) and these slices, keeps the others
        kept = [row for row in read_figures(args.write)
                if row["compiled"] != str(bool(net.COMPILED)) or row["slice"] not in slices]
        args.write.parent.mkdir(parents=True, exist_ok=True)
        with args.write.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, FIGURE_COLUMNS)
            writer.writeheader()
            writer.writerows(kept + rows)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
