"""Write the capacity-planning notebooks (.ipynb, without outputs) from the cells below.

    python notebooks/build_notebooks.py --execute   # after editing a cell; commit the .ipynb files

Each notebook runs from the notebooks/ folder, uses only the public Python API, keeps its settings
small (a few tens of seconds on 2 cores) and saves its figures under $DPSIM_FIGURES (default
notebooks/figures/). With --execute they are run against this checkout and shipped with their
outputs; tests/test_notebooks.py executes them fresh.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """import os
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display
from dpsim import api
from dpsim.planning import capacity, plan, sweep

FIGURES = Path(os.environ.get("DPSIM_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
QUICK = "../scenarios/quickstart.yaml"

def show(fig, name):
    \"\"\"Save a figure as PNG and display it (the PNG is the notebook's output).\"\"\"
    path = FIGURES / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(filename=str(path)))
    return path"""

NOTEBOOKS = {
    "01-pd-ratio-and-node-count.ipynb": [
        "# P/D ratio and node count for a target agent rate\n"
        "How many prefill and decode nodes does a target of **N agents per second** under the 4 s TTFT / "
        "50 ms TPOT SLO need, and which P/D ratio? `plan.plan` searches the SLO capacity of every "
        "layout (as a parallel sweep) and shows the analytic bottleneck-free P/D range of spec section 3 "
        "beside it. Small settings here (DS 27B, 6-turn agents, 10 s windows, storage NICs slowed to "
        "25 Gbps so the miniature is storage-bound like the paper's clusters); use the real scenario, "
        "150 s windows and a finer tolerance for a real plan.",
        SETUP,
        """SETS = ["workload.max_turns=6", "hardware.storage_nic.bandwidth=25Gbps"]
TARGET_APS = 12.0
p = plan.plan(QUICK, nodes=[2, 3], target_aps=TARGET_APS, sets=SETS, jobs=2,
              window_s=10.0, tolerance=4.0, aps_lo=4.0, aps_hi=32.0)
lo, hi = p.pd_range
print(f"analytic bottleneck-free P/D range: {lo:.3g} .. {hi:.3g}")
p.table[["prefill_nodes", "decode_nodes", "pd_ratio", "in_analytic_range", "capacity_aps", "binding"]]""",
        """print("recommended:", p.recommended and f"{p.recommended['prefill_nodes']}P{p.recommended['decode_nodes']}D, "
      f"{p.recommended['capacity_aps']:.3g} APS" or p.notes)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.axvspan(max(lo, 0.1), min(hi, 10), color="tab:green", alpha=0.12, label="analytic bottleneck-free range")
for n, rows in p.table.groupby("nodes"):
    ax.plot(rows.pd_ratio, rows.capacity_aps, "o-", label=f"{n} nodes (simulated)")
ax.axhline(TARGET_APS, color="grey", ls="--", lw=1, label="target")
ax.set_xscale("log"); ax.set_xlabel("P/D ratio"); ax.set_ylabel("SLO capacity (APS)")
ax.legend(fontsize=8)
show(fig, "pd_ratio_capacity.png");""",
    ],
    "02-storage-nic-whatif.ipynb": [
        "# What does a second storage NIC buy? (1x vs 2x storage NICs, and DualPath versus adding NICs)\n"
        "A **storage-bound** miniature: DS 27B on 1 prefill + 1 decode node, 48 agents of the 64K set cut to "
        "12 turns, with the storage NICs slowed to 25 Gbps so that reading the cached KV, not the GPUs, sets "
        "the pace (as on the paper's clusters at full scale). It runs offline as a sweep over `policy.system` "
        "x `hardware.storage_nic.count`. Basic reads all hit KV through the prefill node's storage NICs; "
        "DualPath also reads through the decode node's otherwise idle ones; a second NIC per node adds "
        "bandwidth on every node. The question: which buys more job completion time (JCT), and do they add up?",
        SETUP,
        """points = sweep.expand(QUICK, grid={"policy.system": ["basic", "dualpath"],
                                    "hardware.storage_nic.count": [1, 2]},
                       fixed=["workload.mal=64K", "workload.agents=48", "workload.max_turns=12",
                              "hardware.storage_nic.bandwidth=25Gbps"])
frame = sweep.run_points(points, jobs=2, progress=False)
table = frame.pivot(index="policy.system", columns="hardware.storage_nic.count", values="jct_s")
table.columns = [f"{c} x 25 Gbps" for c in table.columns]
busy = frame.pivot(index="policy.system", columns="hardware.storage_nic.count", values="gpu_busy_fraction_prefill")
busy.columns = [f"prefill GPU busy, {c} NIC" for c in busy.columns]
table.join(busy).round(3)""",
        """base = table.loc["basic", "1 x 25 Gbps"]
speedup = (base / table).round(2)
print("speed-up over Basic with one NIC:")
print(speedup)
fig, ax = plt.subplots(figsize=(5.5, 3.5))
labels = [f"{s}\\n{n}" for s in table.index for n in table.columns]
values = [table.loc[s, n] for s in table.index for n in table.columns]
ax.bar(range(len(values)), values, color=["tab:blue", "tab:cyan", "tab:orange", "tab:red"])
ax.set_xticks(range(len(values)), labels, fontsize=8)
ax.set_ylabel("JCT (s)"); ax.set_title("DS 27B 1P1D, 25 Gbps storage NICs (H800 preset): NICs vs DualPath")
show(fig, "storage_nic_whatif.png");""",
        "## Conclusion\n"
        "The cell below states it from the numbers above. In this storage-bound setting the prefill GPUs are "
        "mostly idle under Basic with one NIC (the storage NIC is the bottleneck). On 1P1D, DualPath's extra "
        "read path is the decode node's one storage NIC, so DualPath on one NIC per node and Basic with a "
        "second NIC add the same read bandwidth and land close together; both together help less, because "
        "the bottleneck moves towards the GPUs. With more decode than prefill nodes (the paper's 2P4D), "
        "DualPath adds more read paths than a second NIC on the prefill nodes would; try "
        "`dpsim compare scenarios/paper/ds660b-2p4d.yaml --set workload.agents=256` for that scale.",
        """one_nic, two_nics = table.columns
dual, second = table.loc["dualpath", one_nic], table.loc["basic", two_nics]
print(f"Basic, one NIC: {base:.1f} s. A second NIC: {second:.1f} s ({base / second:.2f}x). "
      f"DualPath on one NIC: {dual:.1f} s ({base / dual:.2f}x). Both: {table.loc['dualpath', two_nics]:.1f} s "
      f"({base / table.loc['dualpath', two_nics]:.2f}x).")
print("DualPath on one NIC per node", "matches" if abs(dual / second - 1) < 0.05 else
      ("beats" if dual < second else "trails"), "Basic with a second NIC "
      f"({dual / second - 1:+.0%} JCT), without buying NICs.")""",
    ],
    "03-future-hardware.ipynb": [
        "# Future hardware: the cache-compute ratio trend\n"
        "GPU FLOPs grow faster than NIC bandwidth. For a fixed model and workload, the KV bytes a turn "
        "must load per second of prefill compute grow with the GPU's speed: storage I/O takes a "
        "larger share. Here the GPU's peak FLOPs are scaled 1x, 2x, 4x with NICs fixed, and Basic and "
        "DualPath JCT compared (DS 27B 1P1D, 64K agents, offline, small).",
        SETUP,
        """from dpsim.scenario.models import get_model
model = get_model("ds27b")
sc = api.load_scenario(QUICK)
ratio = model.cache_compute_ratio_gb_per_pflop(32721, 429)  # GB of KV per PFLOP, 64K set averages
gpu_pflops = sc.hardware.gpu.peak_flops_fp8 * sc.hardware.gpu.gemm_efficiency / 1e15
nic_gbs = sc.hardware.storage_nic.bandwidth / 1e9
SCALES = [1, 2, 4]
# Seconds of storage-NIC time per second of GPU compute, per GPU (8 GPUs share one storage NIC).
io_per_compute = [ratio * gpu_pflops * s * 8 / nic_gbs for s in SCALES]
print(f"cache-compute ratio {ratio:.1f} GB/PFLOP; storage s per compute s: "
      + ", ".join(f"{s}x: {v:.2f}" for s, v in zip(SCALES, io_per_compute)))""",
        """points = sweep.expand(QUICK, grid={"policy.system": ["basic", "dualpath"],
                                    "hardware.gpu.peak_flops_fp8": [f"{1979 * s}TFLOPS" for s in SCALES]},
                       zip=None, fixed=["workload.mal=64K", "workload.agents=48", "workload.max_turns=12"])
# Scale BF16 (attention) with FP8 (GEMMs): one GPU generation.
points = [sweep.Point(p.base, p.overrides + (("hardware.gpu.peak_flops_bf16",
          f"{float(dict(p.overrides)['hardware.gpu.peak_flops_fp8'][:-6]) / 2:g}TFLOPS"),)) for p in points]
frame = sweep.run_points(points, jobs=2, progress=False)
frame["gpu_scale"] = frame["hardware.gpu.peak_flops_fp8"].str[:-6].astype(float) / 1979
jct = frame.pivot(index="gpu_scale", columns="policy.system", values="jct_s")
jct["speed-up"] = jct.basic / jct.dualpath
jct""",
        """fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
a1.plot(SCALES, io_per_compute, "o-"); a1.set_xlabel("GPU FLOPs (x H800)")
a1.set_ylabel("storage s per compute s"); a1.set_title("cache-compute pressure")
a2.plot(jct.index, jct.basic, "o-", label="basic"); a2.plot(jct.index, jct.dualpath, "o-", label="dualpath")
a2.set_xlabel("GPU FLOPs (x H800)"); a2.set_ylabel("JCT (s)"); a2.legend(); a2.set_title("JCT, NICs fixed")
show(fig, "future_hardware.png");""",
    ],
    "04-calibration-profile.ipynb": [
        "# Loading a calibration profile: predicted versus measured\n"
        "`dpsim-calibrate` measured storage reads on a machine and fitted a profile "
        "(`scenarios/profiles/local-odirect-ds27b.yaml`: per-read overhead, bandwidth, queue depth). "
        "A scenario `include:`s it. Here the profile's storage model (what the simulator uses: "
        "`dpsim.kernel.resources.hardware.storage_client_rate`) is compared with the raw measurements it was fitted "
        "from, then a small scenario runs on the profiled storage.",
        SETUP,
        """import json
import pandas as pd
import yaml
from dpsim.kernel.resources.hardware import storage_client_rate

PROFILE = Path("../scenarios/profiles/local-odirect-ds27b.yaml").resolve()
profile = yaml.safe_load(PROFILE.read_text())
raw = [json.loads(line) for line in (PROFILE.parent / "local-odirect-ds27b" / "storage.jsonl").open()]
samples = pd.DataFrame([r for r in raw if r.get("kind") == "storage"])
samples["size"] = samples["size"].fillna(samples.bytes / samples["count"])
samples["measured_Bps"] = samples.bytes / samples.elapsed_s
measured = samples.groupby(["size", "depth"]).measured_Bps.median().reset_index()
# The profile as dpsim loads it: include it from a scenario.
scenario_file = FIGURES / "profiled.yaml"
scenario_file.write_text(f"include: [{PROFILE}]\\nname: profiled\\ncluster: {{prefill_nodes: 1, decode_nodes: 1}}\\n"
                         "model: {name: ds27b}\\nworkload: {mal: 32K, agents: 8, max_turns: 6}\\n")
sc = api.load_scenario(scenario_file)
st = sc.hardware.storage
measured["predicted_Bps"] = [storage_client_rate(sc.hardware.storage_nic.bandwidth, st.read_efficiency,
                                                 st.io_overhead, min(int(d), st.queue_depth), s)
                             for s, d in zip(measured["size"], measured.depth)]
measured["rel_err"] = measured.predicted_Bps / measured.measured_Bps - 1
print(f"storage: {sc.hardware.storage_nic.bandwidth / 1e9:.2f} GB/s, io_overhead {st.io_overhead * 1e6:.0f} us, "
      f"queue depth {st.queue_depth}; median |error| {measured.rel_err.abs().median():.1%}")
measured.head(12)""",
        """fig, ax = plt.subplots(figsize=(6, 3.6))
for depth, rows in measured.groupby("depth"):
    line, = ax.plot(rows["size"], rows.measured_Bps / 1e9, "o", ms=4, label=f"measured, depth {depth}")
    ax.plot(rows["size"], rows.predicted_Bps / 1e9, "-", color=line.get_color(), lw=1)
ax.set_xscale("log"); ax.set_xlabel("read size (B)"); ax.set_ylabel("GB/s")
ax.set_title("storage reads: measured (dots) vs profile model (lines)"); ax.legend(fontsize=7)
show(fig, "calibration_storage.png");""",
        """result = api.run(sc, progress=False)
print(f"on the profiled storage: JCT {result.summary['jct_s']:.1f} s, "
      f"TTFT p50 {result.summary['ttft_s']['p50']:.3f} s, invariants ok: {result.summary['invariants_ok']}")
from dpsim.viz.plots import nic_utilisation
path = nic_utilisation(result.links, "snic.rx", "storage NIC reads (profiled)", FIGURES / "calibration_snic.png")
display(Image(filename=str(path)))""",
    ],
    "05-whatif.ipynb": [
        "# What if: a DRAM cache tier in front of storage, and where it breaks down\n"
        "The DualPath paper's SGL(MC) baseline put a Mooncake store (1.5 TB of DRAM per node) in front of "
        "storage. Two claims to check (docs/whatif.md, sections 1 and 2): **DualPath adds little on top of a "
        "DRAM cache that holds the working set**, and **a DRAM pool breaks down once the working set outgrows "
        "it** (more agents x longer contexts, or DRAM taken by other state, e.g. an RL rollout's offloaded "
        "training state: `hardware.dram_tier.reserved_per_node`). A storage-bound miniature: DS 27B on 1 prefill "
        "+ 1 decode node, 16 agents of the 64K set cut to 12 turns, storage NICs slowed to 25 Gbps (as in "
        "notebook 02) so that reading cached KV sets the pace, H800 preset. The pool is then shrunk from "
        "'holds everything' to nothing.",
        SETUP,
        """SETS = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=12",
        "hardware.storage_nic.bandwidth=25Gbps"]
TIER = ["hardware.dram_tier.enabled=true", "hardware.dram_tier.capacity_per_node=1.5TB"]
# 1. How much KV does the workload put in the pool? Run once with the whole 1.5 TB per node.
full = api.run(api.load_scenario(QUICK, SETS + TIER), progress=False).summary["dram_tier"]
working_set = full["peak_used_fraction"] * full["pool_bytes_per_node"]
print(f"KV in the pool at its peak: {working_set / 1e9:.2f} GB per node; hit KV served from DRAM: {full['hit_fraction']:.0%}")""",
        """# 2. Shrink the pool: reserve all but a fraction of the working set for other state.
FRACTIONS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
grid = {"policy.system": ["basic", "dualpath"],
        "hardware.dram_tier.reserved_per_node": [f"{1.5e12 - f * working_set:.0f}B" for f in FRACTIONS]}
points = sweep.expand(QUICK, grid=grid, fixed=SETS + TIER)
points += sweep.expand(QUICK, grid={"policy.system": ["basic", "dualpath"]}, fixed=SETS)  # no tier
frame = sweep.run_points(points, jobs=2, progress=False)
frame["pool_fraction"] = [(1.5e12 - float(r[:-1])) / working_set if isinstance(r, str) else float("nan")
                          for r in frame["hardware.dram_tier.reserved_per_node"]]
tier = frame.dropna(subset=["pool_fraction"])
jct = tier.pivot(index="pool_fraction", columns="policy.system", values="jct_s").round(2)
jct["hit_fraction"] = tier.groupby("pool_fraction").dram_tier_hit_fraction.mean().round(3)
jct["dualpath_gain"] = (jct.basic / jct.dualpath).round(3)
no_tier = frame[frame.pool_fraction.isna()].set_index("policy.system").jct_s
print("no tier:", no_tier.round(2).to_dict())
jct""",
        """fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
for system, color in (("basic", "tab:blue"), ("dualpath", "tab:orange")):
    a1.plot(jct.index, jct[system], "o-", color=color, label=f"{system} + DRAM tier")
    a1.axhline(no_tier[system], color=color, ls="--", lw=1, label=f"{system}, no tier")
a1.set_xlabel("DRAM pool per node / KV in the pool at its peak"); a1.set_ylabel("JCT (s)"); a1.legend(fontsize=7)
a2.plot(jct.index, jct.hit_fraction, "o-", color="tab:green", label="hit KV served from DRAM")
a2.plot(jct.index, jct.dualpath_gain, "s-", color="tab:red", label="DualPath gain (Basic / DualPath JCT)")
a2.set_xlabel("DRAM pool per node / KV in the pool at its peak"); a2.set_ylim(bottom=0); a2.legend(fontsize=7)
fig.suptitle("DRAM tier crossover: DS 27B 1P1D, 25 Gbps storage NICs, H800 preset (miniature)", fontsize=9)
show(fig, "dram_tier_crossover.png");""",
        "## Why the cliff is steep\n"
        "LRU by block with agents taking turns: a pool short of the working set by *e* blocks loses exactly *e* "
        "blocks per access once warm (each request's misses evict the next agent's oldest blocks), so the hit "
        "fraction falls linearly from 1 to 0 while the shortfall grows by one agent's context "
        "(`tests/test_dram_tier.py` checks this closed form). The pool needs only the *live* contexts (agents "
        "still running), which is why it still serves every hit somewhat below the peak of all KV ever written. "
        "Below that, Basic falls back to its storage NIC and DualPath's second read path matters again.",
        """full_hits = jct[jct.hit_fraction >= 0.999]
smallest_full = full_hits.index.min()
print(f"Every hit from DRAM down to a pool of {smallest_full:.1f}x the peak KV; there DualPath's gain is "
      f"{full_hits.dualpath_gain.min():.2f}-{full_hits.dualpath_gain.max():.2f}x (no tier: "
      f"{no_tier['basic'] / no_tier['dualpath']:.2f}x).")
empty = jct.loc[0.0]
print(f"Empty pool: hits {empty.hit_fraction:.0%}, DualPath gain {empty.dualpath_gain:.2f}x, as without a tier.")""",
        "## Split reads (what-if 2): one request's hit KV from both sides at once\n"
        "DualPath chooses one read side per request. With `policy.read_split: balanced` the scheduler reads a "
        "share on each side, sized from both read queues (docs/whatif.md, section 2). First the mechanism, live, "
        "on one request with both nodes idle: split in two halves, its read takes half the time.",
        """from dpsim.workload.trajectory import Trajectory, Turn
one = [Trajectory("t0", [Turn(64 * 201, 64 * 200, 4)])]
read_ms = {}
for split in ("whole", "balanced"):
    sc = api.load_scenario("../scenarios/paper/ds27b-1p1d.yaml", ["workload.agents=1", f"policy.read_split={split}"])
    turn = api.run(sc, one, progress=False).turns.iloc[0]
    read_ms[split] = (turn.t_read_end - turn.t_read_start) * 1e3
    print(f"{split:9s} read side {turn.read_side}, DE part {turn.hit_tokens_de} tokens, read {read_ms[split]:.2f} ms")
print(f"split / whole read time: {read_ms['balanced'] / read_ms['whole']:.3f}")""",
        "## The study\n"
        "Run with `python -m dpsim.reproduce.whatif_studies scenarios/whatif/split-reads.yaml`; its per-seed "
        "table is committed and the next cell only reads it: the P/D-ratio layouts with GPUs made nearly free, "
        "where whole-request choice falls short of saturating the storage NICs at the P/D-bound ends.",
        """import pandas as pd
runs = pd.read_csv("../docs/data/whatif/split-reads.csv")
util = (runs.groupby(["layout", "policy.read_split"], sort=False).snic_utilisation
            .agg(median="median", worst="min").unstack("policy.read_split"))
jct = runs.pivot_table(index=["layout", "run.seed"], columns="policy.read_split", values="jct_s")
gain = (100 * (1 - jct.balanced / jct.whole)).groupby("layout", sort=False).agg(["median", "min", "max"])
print("storage-NIC utilisation (median, worst seed):"); print(util.round(3))
print("JCT gain of split reads per seed pair, %:"); print(gain.round(1))""",
        """fig, ax = plt.subplots(figsize=(7, 3.5))
layouts = list(dict.fromkeys(runs.layout))
for offset, mode in ((-0.1, "whole"), (0.1, "balanced")):
    med, worst = util[("median", mode)].reindex(layouts), util[("worst", mode)].reindex(layouts)
    ax.errorbar([i + offset for i in range(len(layouts))], med, yerr=[med - worst, 0 * med], fmt="o",
                capsize=3, label=f"{mode} (median, bar to worst seed)")
ax.set_xticks(range(len(layouts)), layouts); ax.set_ylabel("storage NIC utilisation")
ax.set_title("Split reads vs whole-request choice: DS 27B, GPUs ~free, H800 preset, 64 agents/node, 3 seeds",
             fontsize=9)
ax.legend(fontsize=8)
show(fig, "split_reads.png");""",
        "## What the two studies say together\n"
        "A DRAM tier that holds the live contexts makes the second read path unnecessary (DualPath's gain ~1x); "
        "once the working set outgrows the pool, storage sets the pace again and DualPath's gain returns to its "
        "no-tier value. Splitting one request's read across both sides adds little beyond whole-request choice: "
        "a few per cent of JCT at the P/D-bound end (1P7D), nothing where the storage NICs are already saturated. "
        "Split reads and the DRAM tier are not modelled together (dpsim refuses the pair).",
    ],
}


def build(execute: bool = False) -> list[Path]:
    """Write every notebook (stable cell ids); with `execute`, run it and keep its outputs."""
    paths = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook()
        nb.cells = [new_markdown_cell(cells[0])] + [new_markdown_cell(c) if c.startswith("## ") else new_code_cell(c)
                                                    for c in cells[1:]]
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-cell-{i}"  # stable: a rebuild changes only what changed
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        if execute:
            _execute(nb)
        path = HERE / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def _execute(nb) -> None:
    """Run `nb` in notebooks/ against this checkout's dpsim (PYTHONPATH), figures in a temporary folder."""
    import os
    import tempfile

    import nbclient

    with tempfile.TemporaryDirectory() as figures:
        env = {"DPSIM_FIGURES": figures, "MPLBACKEND": "Agg", "PYTHONPATH": str(HERE.parent)}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the kernel inherits them
        try:
            nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(HERE)}}).execute()
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


if __name__ == "__main__":
    import sys

    for p in build(execute="--execute" in sys.argv):
        print(p)
