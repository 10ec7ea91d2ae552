"""Experiments on the namespace test bed (:mod:`calibrate.testbed`), driving the real commands in
the namespaces as a user would on three hosts. Used by the tests and by
``python -m calibrate.experiments`` (the full ground-truth run written up in docs/calibration.md).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

from .storage import BlockLayout, ensure_block_files
from .testbed import HIGH_PRIORITY, LOW_PRIORITY, Testbed, start_server


@contextlib.contextmanager
def servers(bed: Testbed, specs: list[tuple[str, str, list[str]]]):
    """Start ``serve`` processes [(role, ip, args)]; yields their addresses; kills them after."""
    procs, addrs = [], []
    try:
        for role, ip, args in specs:
            p, addr = start_server(bed, role, ip, args)
            procs.append(p)
            addrs.append(addr)
        yield addrs
    finally:
        for p in procs:
            p.kill()
            p.wait()
            for s in (p.stdout, p.stderr):
                if s:
                    s.close()


def block_dir(block_size: int, blocks: int = 32, nfiles: int = 2, directory: str | None = None) -> Path:
    d = Path(directory or tempfile.mkdtemp(prefix="dpsim-cal-blocks-"))
    ensure_block_files(d, BlockLayout(block_size), blocks, nfiles)
    return d


def link_sweeps(bed: Testbed, raw: str, blocks: Path, sizes: str = "16KiB..2MiB", reps: int = 5,
                delay: str = "0s", links: tuple[str, ...] = ("storage_pe", "storage_de", "compute"),
                compute_op: str = "write") -> None:
    """Size sweeps (depth 1) over each link, in the direction KV moves: storage reads from the
    prefill and decode hosts, and decode -> prefill writes on the compute link."""
    for name in links:
        link = bed.links[name]
        if name == "compute" and compute_op == "write":  # the decode host writes into the prefill host
            spec = [("pe", link.dst_ip, ["--delay", delay, "--buffer", "8MiB"])]
            client, args = "de", ["--op", "write"]
        elif name == "compute":  # the prefill host reads from the decode host
            spec = [("de", link.src_ip, ["--delay", delay, "--buffer", "8MiB"])]
            client, args = "pe", ["--op", "read"]
        else:
            spec = [("st", link.src_ip, ["--delay", delay, "--buffer", "8MiB", "--files", str(blocks)])]
            client, args = link.dst, ["--op", "read", "--region", "blocks000.kv"]
        with servers(bed, spec) as (addr,):
            bed.run(client, ["calibrate.cli", "transport", addr, "--sizes", sizes, "--reps", str(reps),
                             "--link", name, "--raw", raw, "--resume", *args])


def loader_run(bed: Testbed, raw: str, blocks: Path, block_size: str = "1MiB", layers: int = 8,
               blocks_per_request: int = 4, requests: int = 16, depth: int = 2, paths: str = "both",
               repeat: int = 1) -> subprocess.CompletedProcess:
    sp, sd, comp = bed.links["storage_pe"], bed.links["storage_de"], bed.links["compute"]
    spec = [("st", sp.src_ip, ["--files", str(blocks)]), ("st", sd.src_ip, ["--files", str(blocks)])]
    with servers(bed, spec) as (addr_pe, addr_de):
        agent = bed.spawn("de", ["calibrate.cli", "decode-agent", "--listen", f"{comp.src_ip}:0", "--storage", addr_de],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = agent.stdout.readline()
            if not line.startswith("LISTENING "):
                raise RuntimeError(f"decode agent did not start: {line} {agent.stderr.read()}")
            dec = line.split()[1]
            return bed.run("pe", ["calibrate.cli", "loader", "--storage-pe", addr_pe, "--storage-de", addr_de,
                                  "--decode", dec, "--listen", f"{comp.dst_ip}:0", "--block-size", block_size,
                                  "--layers", str(layers), "--blocks-per-request", str(blocks_per_request),
                                  "--requests", str(requests), "--depth", str(depth), "--paths", paths,
                                  "--repeat", str(repeat), "--raw", raw, "--resume"])
        finally:
            agent.kill()
            agent.wait()
            agent.stdout.close()
            agent.stderr.close()


def priority_run(bed: Testbed, raw: str, high_bytes: str = "16MiB", low_bytes: str = "16MiB",
                 low_start: str = "0s", high_start: str = "0s") -> None:
    """On an htb compute link: the low-priority (KV) flow alone, then beside a high-priority flow.
    The data flows decode -> prefill (the server runs on the decode host, the reader on the prefill)."""
    comp = bed.links["compute"]
    with servers(bed, [("de", comp.src_ip, ["--buffer", "16MiB"])]) as (addr,):
        bed.run("pe", ["calibrate.cli", "contend", addr, "--flow", f"{low_bytes}:{LOW_PRIORITY}", "--raw", raw,
                       "--resume"])
        bed.run("pe", ["calibrate.cli", "contend", addr, "--flow", f"{high_bytes}:{HIGH_PRIORITY}:{high_start}",
                       "--flow", f"{low_bytes}:{LOW_PRIORITY}:{low_start}", "--raw", raw, "--resume"])


def main(argv=None) -> int:  # pragma: no cover - manual full run, written up in docs/calibration.md
    """Full ground-truth run: link sweeps, loader (depth 1 and 2, both paths), htb priority runs,
    fit -> profile, closure. Prints a JSON summary and leaves raw files and the profile in OUT."""
    import argparse
    import json

    from .check import closure, format_closure
    from .priority import priority_closure
    from .measure import read_samples
    from .profile import build_profile, fit_samples, write_profile
    from dpsim.units import parse_bandwidth

    ap = argparse.ArgumentParser(prog="python -m calibrate.experiments")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--storage-rate", default="200Mbit/s", help="tbf rate of each storage link")
    ap.add_argument("--compute-rate", default="800Mbit/s", help="tbf (or htb) rate of the compute link")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--profile", default=None, help="where to write the profile (default OUT/profile.yaml)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("links.jsonl", "loader.jsonl", "priority.jsonl"):
        (out / f).unlink(missing_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="dpsim-cal-blocks-")  # removed when main returns
    blocks = block_dir(1 << 20, 32, 2, tmp.name)
    with Testbed(a.storage_rate, None, a.compute_rate, prefix=f"dpx{os.getpid() % 10000}") as bed:
        # from 64 KiB: below that a message rides mostly on the token bucket's free burst
        link_sweeps(bed, str(out / "links.jsonl"), blocks, sizes="64KiB..4MiB", reps=a.reps)
        for depth in (1, 2):
            loader_run(bed, str(out / "loader.jsonl"), blocks, requests=a.requests, depth=depth, blocks_per_request=4)
        desc = bed.describe()
    with Testbed(a.storage_rate, None, a.compute_rate, priority=True, prefix=f"dpx{os.getpid() % 10000}") as bed:
        for hs in ("0s", "0.1s"):
            priority_run(bed, str(out / "priority.jsonl"), "16MiB", "16MiB", high_start=hs)
        comp_goodput, low_share = bed.links["compute"].goodput, bed.low_share
    raws = [str(out / "links.jsonl"), str(out / "loader.jsonl")]
    samples = read_samples(raws)
    report = fit_samples(samples)
    prof = build_profile(report, samples, raws, storage_nic=parse_bandwidth(a.storage_rate),
                         compute_nic=parse_bandwidth(a.compute_rate))
    prof["calibration"]["testbed"] = desc
    prof_path = Path(a.profile) if a.profile else out / "profile.yaml"
    write_profile(prof, prof_path)
    clo = closure(str(prof_path), samples)
    pri = priority_closure(read_samples([out / "priority.jsonl"]), comp_goodput, low_share)
    print(format_closure(clo))
    summary = {"testbed": desc, "fits": {k: {kk: v.get(kk) for kk in ("latency_s", "latency_ci95_s", "bandwidth_Bps",
                                                                          "bandwidth_ci95_Bps", "mape", "holdout_mape")}
                                         for k, v in prof["calibration"]["links"].items()},
               "loader": report.get("loader"), "closure": {k: clo[k] for k in ("worst_experiment_rel_err", "max_config_rel_err",
                                                                               "mean_abs_rel_err", "experiments",
                                                                               "per_config")},
               "priority": pri}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary["priority"], indent=1, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
