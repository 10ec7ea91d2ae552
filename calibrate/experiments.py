"""Experiments on the namespace test bed (:mod:`calibrate.testbed`), driving the real commands in
the namespaces as a user would on three hosts. Used by the tests and by
``python -m calibrate.experiments OUT`` (N sessions of the full ground-truth run, written up in
docs/calibration.md; :mod:`calibrate.sessions` turns them into distributions).

OUT is never cleaned: a non-empty OUT is refused unless ``--resume`` (continue the sessions in it)
or ``--force`` (move its earlier sessions aside into OUT/previous-TIME/); a folder holding files
committed to git is refused whatever the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import CalibrateError
from .storage import BlockLayout, ensure_block_files
from .testbed import DEFAULT_COMPUTE_RATE, DEFAULT_STORAGE_RATE, HIGH_PRIORITY, LOW_PRIORITY, Testbed, start_server


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
    prefill and decode hosts, and decode -> prefill writes on the compute link. Each timed message
    follows an idle gap of twice the link's bucket refill time, so its first bucket_bytes cross at
    once (the samples record the bucket; the fit takes it out: docs/calibration.md#the-token-bucket)."""
    for name in links:
        link = bed.links[name]
        shaper = ["--bucket", str(link.bucket), "--gap", f"{max(2 * link.refill_s, 1e-3):.6f}s"] if link.bucket else []
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
                             "--link", name, "--raw", raw, "--resume", *shaper, *args])


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


ALONE_RUNS = 3  # the low flow alone, timed this many times: the closure takes their median (one
# 4 MiB flow lasts 40 ms at 800 Mbit/s, and a stall of the loaded host made one of them 49 ms)


def priority_run(bed: Testbed, raw: str, high_bytes: str = "16MiB", low_bytes: str = "16MiB",
                 low_start: str = "0s", high_start: str = "0s", alone_runs: int = ALONE_RUNS) -> None:
    """On an htb compute link: the low-priority (KV) flow alone (``alone_runs`` times), then beside
    a high-priority flow. The data flows decode -> prefill (the server runs on the decode host, the
    reader on the prefill)."""
    comp = bed.links["compute"]
    with servers(bed, [("de", comp.src_ip, ["--buffer", "16MiB"])]) as (addr,):
        for _ in range(alone_runs):
            bed.run("pe", ["calibrate.cli", "contend", addr, "--flow", f"{low_bytes}:{LOW_PRIORITY}", "--raw", raw,
                           "--resume"])
        bed.run("pe", ["calibrate.cli", "contend", addr, "--flow", f"{high_bytes}:{HIGH_PRIORITY}:{high_start}",
                       "--flow", f"{low_bytes}:{LOW_PRIORITY}:{low_start}", "--raw", raw, "--resume"])


# ------------------------------------------------------------------------------ sessions
PRIORITY_CASE = ("16MiB", "4MiB")  # high, low: strict priority gives the low flow ~5x, fair sharing ~2x
PRIORITY_STARTS_S = (0.0, 0.02)  # the high flow starts together with the low one, or just after
LOADER_DEPTHS = (1, 2)


def committed_files(folder: Path) -> list[str]:
    """Files under ``folder`` that git tracks (empty when git or a repository is absent)."""
    try:
        p = subprocess.run(["git", "-C", str(folder), "ls-files", "--full-name", "."], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return p.stdout.split() if p.returncode == 0 else []


def prepare_out(out: Path, force: bool, resume: bool) -> None:
    """Refuse to write into a non-empty OUT unless told how; never touch committed files."""
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    committed = committed_files(out)
    if committed:  # whatever the flags: --resume would append to them, --force move them
        raise CalibrateError(f"{out} holds files committed to git ({committed[0]}"
                             f"{f' and {len(committed) - 1} more' if len(committed) > 1 else ''}): the run never "
                             "overwrites committed data; choose another OUT")
    if resume:
        return
    if not force:
        raise CalibrateError(f"{out} is not empty: pass --resume to continue its sessions, --force to move them "
                             "aside (nothing is deleted), or choose an empty OUT")
    aside = out / f"previous-{time.strftime('%Y%m%dT%H%M%S')}"
    aside.mkdir()
    for entry in out.iterdir():
        if entry != aside and not entry.name.startswith("previous-"):
            entry.rename(aside / entry.name)


def _priority_done(raw: Path) -> bool:
    from .measure import read_samples

    if not raw.exists():
        return False
    groups = {r.get("group") for r in read_samples([raw]) if r.get("kind") == "priority"}
    return len(groups) >= (ALONE_RUNS + 1) * len(PRIORITY_STARTS_S)


def measure_session(d: Path, a: argparse.Namespace, blocks: Path, prefix: str) -> dict:
    """Measure one session into folder d (each stage resumable). Returns the test bed's description
    with the priority link's goodput and low-class share."""
    d.mkdir(parents=True, exist_ok=True)
    links, loader, prio = d / "links.jsonl", d / "loader.jsonl", d / "priority.jsonl"
    with Testbed(a.storage_rate, None, a.compute_rate, prefix=prefix) as bed:
        link_sweeps(bed, str(links), blocks, sizes=a.sizes, reps=a.reps)
        for depth in LOADER_DEPTHS:
            loader_run(bed, str(loader), blocks, requests=a.requests, depth=depth, blocks_per_request=4)
        desc = bed.describe()
    with Testbed(a.storage_rate, None, a.compute_rate, priority=True, prefix=prefix) as bed:
        if not _priority_done(prio):
            prio.unlink(missing_ok=True)  # a partial priority file: its groups would pair up wrongly
            for start in PRIORITY_STARTS_S:  # each: the low flow alone, then beside the high one
                priority_run(bed, str(prio), PRIORITY_CASE[0], PRIORITY_CASE[1], high_start=f"{start}s")
        desc["priority_link"] = {"goodput": bed.links["compute"].goodput, "low_share": bed.low_share,
                                 "bucket_bytes": bed.links["compute"].bucket}
    return desc


def analyse_session(d: Path, a: argparse.Namespace, desc: dict) -> dict:
    """Fit and close one measured session; writes d/profile.yaml and d/summary.json."""
    from .check import closure
    from .measure import read_samples
    from .priority import priority_closure
    from .profile import load_profile

    raws = [d / "links.jsonl", d / "loader.jsonl"]
    fit_profile(raws, d / "profile.yaml", a, f"session {d.name}", testbed=desc)
    prof = load_profile(d / "profile.yaml")
    samples = read_samples(raws)
    clo = closure(str(d / "profile.yaml"), samples)
    pri = priority_closure(read_samples([d / "priority.jsonl"]), desc["priority_link"]["goodput"],
                           desc["priority_link"]["low_share"], desc["priority_link"].get("bucket_bytes", 0))
    for run, start in zip(pri["runs"], PRIORITY_STARTS_S):
        run["high_start_s"] = start
    totals = {r["experiment"]: r for r in samples if r.get("kind") == "loader_total"}
    exps = [r for r in samples if r.get("kind") == "experiment" and r.get("what") == "loader"
            and r["experiment"] in totals]
    summary = {"testbed": desc, "loader": [totals[e["experiment"]] for e in exps],
               "loader_configs": [e["config"] for e in exps],
               "fits": {k: {kk: v.get(kk) for kk in ("latency_s", "latency_ci95_s", "latency_at_bound", "bandwidth_Bps",
                                                      "bandwidth_ci95_Bps", "mape", "holdout_mape")}
                        for k, v in prof["calibration"]["links"].items()},
               "closure": {k: clo[k] for k in ("experiments", "per_config", "worst_experiment",
                                               "worst_experiment_rel_err", "max_config_rel_err", "mean_abs_rel_err")},
               "priority": pri, "warnings": prof["calibration"].get("warnings", [])}
    for warning in summary["warnings"]:
        print(f"{d.name}: {warning}", file=sys.stderr, flush=True)
    (d / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def fit_profile(raws: list[Path], path: Path, a: argparse.Namespace, note: str, testbed: dict | None = None) -> None:
    from dpsim.scenario.units import parse_bandwidth

    from .measure import read_samples
    from .profile import build_profile, fit_samples, write_profile

    samples = read_samples(raws)
    prof = build_profile(fit_samples(samples, n_boot=a.boot), samples, [str(r) for r in raws],
                         storage_nic=parse_bandwidth(a.storage_rate), compute_nic=parse_bandwidth(a.compute_rate))
    prof["calibration"]["notes"].append(note)
    if testbed:
        prof["calibration"]["testbed"] = testbed
    write_profile(prof, path)


def heldout_closures(out: Path, sessions: list[Path], a: argparse.Namespace) -> list[list[dict]]:
    """Per session: the closure of its experiments under a profile fitted on the *other* sessions
    only (a whole session held out, not only interleaved sizes)."""
    from .check import closure
    from .measure import read_samples

    rows = []
    for k, d in enumerate(sessions):
        others = [s for j, s in enumerate(sessions) if j != k]
        path = out / "heldout" / f"profile-without-{d.name}.yaml"
        fit_profile([f for s in others for f in (s / "links.jsonl", s / "loader.jsonl")], path, a,
                    f"fitted without {d.name}, to check it")
        rows.append(closure(str(path), read_samples([d / "links.jsonl", d / "loader.jsonl"]))["experiments"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """N sessions of the ground-truth run (link sweeps, loader at depth 1 and 2 on both paths, htb
    priority runs, fit, closure), then every figure's median and worst over the sessions with its
    goal. Exit 1 when a gated figure misses its goal, 2 when the run cannot be made."""
    from .errors import Unavailable, one_line
    from .sessions import (
        distribution,
        failed,
        format_distribution,
        format_spread,
        heldout_figures,
        link_spread,
        session_figures,
    )

    ap = argparse.ArgumentParser(prog="python -m calibrate.experiments", description=main.__doc__)
    ap.add_argument("out", help="output folder (one session-K/ folder per session)")
    ap.add_argument("--sessions", type=int, default=5, help="complete sessions to run (default 5)")
    ap.add_argument("--resume", action="store_true", help="continue the sessions already in OUT")
    ap.add_argument("--force", action="store_true", help="OUT is not empty: move its sessions aside, then start")
    ap.add_argument("--storage-rate", default=DEFAULT_STORAGE_RATE, help="tbf rate of each storage link")
    ap.add_argument("--compute-rate", default=DEFAULT_COMPUTE_RATE, help="tbf (or htb) rate of the compute link")
    ap.add_argument("--requests", type=int, default=32, help="loader requests per run (4 Full Blocks each)")
    ap.add_argument("--reps", type=int, default=8, help="repetitions per size in the link sweeps")
    ap.add_argument("--sizes", default="64KiB..4MiB",
                    help="link sweep sizes (within the links' token buckets for the latency, and at least 2 sizes "
                         "past twice the largest bucket, 4 ms of the rate, for the bandwidth)")
    ap.add_argument("--boot", type=int, default=300, help="bootstrap resamples per fit")
    ap.add_argument("--profile", default=None, help="where to write the profile fitted on all sessions "
                                                     "(default OUT/profile.yaml)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    try:
        if a.sessions < 1:
            raise CalibrateError(f"--sessions must be at least 1, not {a.sessions}")
        prepare_out(out, a.force, a.resume)
        tmp = tempfile.TemporaryDirectory(prefix="dpsim-cal-blocks-")  # removed when main returns
        blocks = block_dir(1 << 20, 32, 2, tmp.name)
        dirs = [out / f"session-{k + 1}" for k in range(a.sessions)]
        summaries = []
        for d in dirs:
            done = d / "summary.json"
            if done.exists():  # only with --resume: prepare_out refused a non-empty OUT otherwise
                summaries.append(json.loads(done.read_text()))
                continue
            print(f"{d.name}: measuring", file=sys.stderr, flush=True)
            desc = measure_session(d, a, blocks, prefix=f"dpx{os.getpid() % 10000}")
            summaries.append(analyse_session(d, a, desc))
        fit_profile([f for d in dirs for f in (d / "links.jsonl", d / "loader.jsonl")],
                    Path(a.profile) if a.profile else out / "profile.yaml", a, f"fitted on {len(dirs)} sessions")
        heldout = heldout_closures(out, dirs, a) if len(dirs) > 1 else [[] for _ in dirs]
    except (CalibrateError, Unavailable) as e:
        print(f"python -m calibrate.experiments: {one_line(e)}", file=sys.stderr)
        return 2
    figures = [{**session_figures(s), **heldout_figures(rows)} for s, rows in zip(summaries, heldout)]
    rows = distribution(figures)
    text = (f"{len(dirs)} sessions, storage links {a.storage_rate}, compute link {a.compute_rate}\n\n"
            f"{format_distribution(rows)}\n\n{format_spread(link_spread(summaries))}\n")
    (out / "distribution.md").write_text(text)
    (out / "distribution.json").write_text(json.dumps(
        {"sessions": len(dirs), "args": vars(a), "per_session": figures,
         "rows": [{**r, "goal": vars(r["goal"])} for r in rows], "link_spread": link_spread(summaries)},
        indent=2, default=float))
    print(text)
    missed = failed(rows)
    if missed:
        print(f"python -m calibrate.experiments: {len(missed)} figure(s) missed their goal: {'; '.join(missed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
