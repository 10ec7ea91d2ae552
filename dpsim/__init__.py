"""dpsim: a discrete-event simulator of prefill/decode-disaggregated LLM inference with DualPath KV loading.

Reading guide: where each concept of the DualPath paper lives (layers and data flow:
docs/architecture.md; what is modelled and what is not: docs/modeling.md).

Scenario and inputs (`dpsim.scenario`, `dpsim.workload`)
    a scenario file, its sections and ranges     scenario/config.py (schema), scenario/loading.py (files, --set, profiles)
    units ("400Gbps", "64K", "300ms")            scenario/units.py
    the systems: Basic, DualPath, Oracle         scenario/config.py: System, Switches, Scenario.effective_policy
    the models (DS 660B, DS 27B, Qwen 32B)       scenario/models.py: ModelSpec, MODELS (the registry)
    prices and power                             scenario/cost.py
    agentic trajectories, 32K/48K/64K sets       workload/synthetic.py, workload/trajectory.py
    public traces (Mooncake, Azure, ...)         workload/readers/

The simulation kernel (`dpsim.kernel`)
    one run: build the cluster, drive agents     kernel/simulation.py: Simulation
    requests, engines, the read side (PE / DE)   kernel/entities.py: Request, PrefillEngine, DecodeEngine, ReadSide
    what an engine may see and do                kernel/context.py: SimContext
    layerwise / whole-prompt prefill, hand-off   kernel/engines/prefill.py
    decode batches, KV into HBM                  kernel/engines/decode.py
    the DualPath scheduler (alpha, beta, Z)      kernel/policies/scheduler.py: DualPathScheduler, SCHEDULERS
    data paths: storage NIC, compute NIC, DRAM   kernel/resources/hardware.py: Cluster, Node
    the fluid network, traffic isolation         kernel/resources/net.py, kernel/resources/fluid.py (compiled)
    GPU time of a pass or a step (roofline)      kernel/resources/gpu.py
    invariants checked after every run           kernel/invariants.py
    what-if: DRAM tier, DE-buffer bypass         kernel/dram_tier.py, kernel/de_bypass.py (docs/whatif.md)
    what-if: split reads, tail-aware dispatch    kernel/policies/split_reads.py, kernel/policies/deadline.py
    what-if: adaptive P/D roles                  kernel/engines/roles.py, workload/phases.py
    the time guard against runaway runs          kernel/guard.py

Measuring, planning, reproducing
    JCT, TTFT, TPOT, utilisation: the Result     metrics/results.py: collect, run_simulation, Result
    vLLM / AIPerf names, timelines, run folders  metrics/export.py, metrics/timeline.py, metrics/runs.py
    the public Python API                        api.py
    sweeps and seeds                             planning/sweep.py, planning/seeds.py
    capacity under an SLO (the paper stop rule)  planning/capacity.py
    P/D ratio and node count                     planning/plan.py
    the paper's experiments and validation       reproduce/ (experiments, tasks, report, testbed_fit)
    the what-if studies (docs/whatif.md)         reproduce/whatif_studies.py, viz/whatif_figures.py
    figures and HTML reports                     viz/
    the `dpsim` command                          cli/ (app.py: the click group)
    benchmark, compiled build, import rewriter   tools/
"""

__version__ = "0.1.0"
