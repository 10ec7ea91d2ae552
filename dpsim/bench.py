"""Benchmark: simulated turns per wall-second, and the same as a ratio to a bare SimPy event loop.

    python -m dpsim.bench [SCENARIO] [--set k=v ...]

The bare loop is the floor of any SimPy simulator: N processes that each do nothing but wait on
timeouts, timed in the same run, so the ratio is comparable across machines.
"""

from __future__ import annotations

import argparse
import time

import simpy

from dpsim import api, net


def bare_simpy_events_per_s(events: int = 200_000) -> float:
    env = simpy.Environment()

    def proc():
        while True:
            yield env.timeout(1.0)

    for _ in range(100):
        env.process(proc())
    t0 = time.perf_counter()
    env.run(until=events / 100)
    return events / (time.perf_counter() - t0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="scenarios/quickstart.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args(argv)
    scenario = api.load_scenario(args.scenario, args.sets)
    trajectories = api.build_workload(scenario)
    bare = bare_simpy_events_per_s()
    print(f"bare SimPy loop: {bare:,.0f} timeout events/s; network solver: "
          f"{'compiled' if net.COMPILED else 'pure Python'} (python -m dpsim.compiled status)")
    for system in ("basic", "dualpath", "oracle"):
        sc = api.with_overrides(scenario, policy={"system": system})
        t0 = time.perf_counter()
        result = api.run(sc, trajectories, progress=False)
        wall = time.perf_counter() - t0
        turns = result.summary["turns"]
        events = result.run_info["events_processed"] or 0
        print(f"{scenario.name} {system:9s}: {turns} turns in {wall:6.2f} s = {turns / wall:8,.0f} turns/s; "
              f"{events / wall:9,.0f} SimPy events/s = {events / wall / bare:.3f} x bare loop; "
              f"{result.run_info['flows']} flows")


if __name__ == "__main__":
    main()
