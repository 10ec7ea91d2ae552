"""Side-by-side benchmarks against the reference tools, like for like (not a unit test; run by hand):

* ``tcp``:     iperf3 over loopback (``-l`` = the message size, ``-P`` = the streams) versus the TCP
               transport's WRITE streams over loopback (same message size, one connection per
               stream, ``--depth`` messages outstanding on each so the stream never idles);
* ``storage``: fio (``psync``, ``O_DIRECT``, random block-aligned reads, ``numjobs`` = queue depth)
               versus the ``odirect`` reader (a thread per outstanding ``preadv``) on the same file
               with the same block size and depth.

``python -m calibrate.bench tcp|storage|all [--rounds 5] [--json out.json]``

Each round runs the reference tool and ours back to back, alternating which goes first; the
report gives every round, the medians and the ratio ours / reference of each round (paired, so
drift between rounds cancels), with its median and worst.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import CalibrateError, Unavailable


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def iperf3_loopback(seconds: float = 5.0, size: int = 1 << 20, streams: int = 1) -> float:
    """bytes/s received by iperf3 over 127.0.0.1: ``streams`` streams writing ``size`` bytes each."""
    if not shutil.which("iperf3"):
        raise Unavailable("iperf3 is not installed (apt-get install iperf3)")
    port = _free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-l", str(size),
                              "-P", str(streams), "-J"], capture_output=True, text=True, timeout=seconds + 30)
        try:
            data = json.loads(out.stdout)
            return data["end"]["sum_received"]["bits_per_second"] / 8
        except (ValueError, KeyError):
            raise CalibrateError(f"iperf3 gave no result: {(out.stderr or out.stdout).strip()[-300:]}") from None
    finally:
        srv.kill()
        srv.wait()


def tcp_transport_loopback(seconds: float = 5.0, size: int = 1 << 20, depth: int = 2, streams: int = 1,
                           op: str = "write") -> float:
    """bytes/s of ``streams`` TCP-transport connections over 127.0.0.1, each moving ``size``-byte
    messages (``op``) with ``depth`` outstanding, to a ``serve`` process of its own (as iperf3's
    server is: a server thread in this process would share its interpreter lock)."""
    from .measure import timed_threads
    from .transports import get_transport, transfer_batch

    srv = subprocess.Popen([sys.executable, "-m", "calibrate.cli", "serve", "--listen", "127.0.0.1:0", "--buffer",
                            str(max(64 << 20, 2 * size * depth))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        line = srv.stdout.readline()
        if not line.startswith("LISTENING "):
            raise CalibrateError(f"transport server did not start: {line.strip()} {srv.stderr.read().strip()[-300:]}")
        tr = get_transport("tcp")
        eps = [tr.connect(line.split()[1]) for _ in range(streams)]
        locals_ = [tr.register(bytearray(size * depth)) for _ in range(streams)]
        remote = eps[0].remote("mem")
        for ep, local in zip(eps, locals_):
            transfer_batch(ep, op, local, remote, size, 8, depth)  # warm-up
        moved = [0] * streams

        def stream(i: int) -> None:
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                transfer_batch(eps[i], op, locals_[i], remote, size, 16, depth)
                moved[i] += 16 * size

        elapsed = timed_threads(streams, stream)
        for ep in eps:
            ep.close()
        return sum(moved) / elapsed
    finally:
        srv.kill()
        srv.wait()
        srv.stdout.close()
        srv.stderr.close()


def fio_read(path: Path, bs: int, depth: int, seconds: float = 4.0) -> float:
    if not shutil.which("fio"):
        raise Unavailable("fio is not installed (apt-get install fio)")
    cmd = ["fio", "--name=dpsim-cal", f"--filename={path}", "--rw=randread", f"--bs={bs}", "--direct=1",
           "--ioengine=psync", f"--numjobs={depth}", "--thread", "--group_reporting", f"--runtime={seconds}",
           "--time_based", "--output-format=json", "--randrepeat=0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise CalibrateError(f"fio failed: {out.stderr.strip()[-300:]}")
    data = json.loads(out.stdout[out.stdout.index("{"):])
    return data["jobs"][0]["read"]["bw_bytes"]


def reader_read(path: Path, bs: int, depth: int, seconds: float = 4.0, reader: str = "odirect") -> float:
    from .storage import open_reader

    rd = open_reader(reader, [path])
    try:
        nblocks = rd.sizes[0] // bs
        rnd = random.Random(3)
        bufs = [rd.buffer(bs) for _ in range(depth)]
        # a short batch sizes one long batch, so the queue stays full for the whole measurement
        # (every batch ends with a tail where fewer than `depth` reads are in flight)
        probe = [(0, rnd.randrange(nblocks) * bs, bs) for _ in range(8 * depth)]
        rate = len(probe) * bs / rd.read_many(probe, depth, bufs)
        n = max(16 * depth, int(rate * seconds / bs))
        reads = [(0, rnd.randrange(nblocks) * bs, bs) for _ in range(n)]
        return n * bs / rd.read_many(reads, depth, bufs)
    finally:
        rd.close()


def bench_tcp(rounds: int, seconds: float, size: int = 1 << 20, streams: int = 1, depth: int = 2) -> dict:
    ref, ours = [], []
    for i in range(rounds):  # alternate which runs first, so drift does not favour one side
        if i % 2:
            ours.append(tcp_transport_loopback(seconds, size, depth, streams))
            ref.append(iperf3_loopback(seconds, size, streams))
        else:
            ref.append(iperf3_loopback(seconds, size, streams))
            ours.append(tcp_transport_loopback(seconds, size, depth, streams))
    return _report(f"tcp loopback, {size} B writes, {streams} stream(s): iperf3 -l {size} -P {streams} vs TCP "
                   f"transport (WRITE, depth {depth} per connection)", ref, ours)


def bench_storage(rounds: int, seconds: float, directory: str | None, bs: int, depth: int, file_size: int) -> dict:
    from .storage import BlockLayout, ensure_block_files

    d = Path(directory or tempfile.mkdtemp(prefix="dpsim-cal-fio-", dir="/var/tmp"))
    path = ensure_block_files(d, BlockLayout(bs), max(1, file_size // bs), 1, prefix="fio")[0]
    ref, ours = [], []
    for i in range(rounds):  # alternate which runs first, so drift does not favour one side
        if i % 2:
            ours.append(reader_read(path, bs, depth, seconds))
            ref.append(fio_read(path, bs, depth, seconds))
        else:
            ref.append(fio_read(path, bs, depth, seconds))
            ours.append(reader_read(path, bs, depth, seconds))
    rep = _report(f"O_DIRECT random {bs} B reads, depth {depth}: fio (psync x {depth} threads) vs odirect reader",
                  ref, ours)
    rep["file"] = str(path)
    return rep


def _report(what: str, ref: list[float], ours: list[float]) -> dict:
    r, o = statistics.median(ref), statistics.median(ours)
    paired = [b / a for a, b in zip(ref, ours)]
    return {"what": what, "reference_Bps": ref, "ours_Bps": ours, "reference_median_Bps": r, "ours_median_Bps": o,
            "ratio_of_medians": o / r, "paired_ratios": paired, "median_paired_ratio": statistics.median(paired),
            "worst_paired_ratio": min(paired)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibrate.bench")
    ap.add_argument("which", choices=["tcp", "storage", "all"])
    ap.add_argument("--rounds", type=int, default=5, help="paired rounds (at least 5 for a median)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--dir", default=None, help="directory for the storage test file (default /var/tmp/...)")
    ap.add_argument("--bs", default="4MiB", help="storage block size")
    ap.add_argument("--tcp-size", default="1MiB", help="TCP message size = iperf3's write size (-l, at most 1 MiB)")
    ap.add_argument("--streams", type=int, default=1, help="TCP streams (iperf3 -P, transport connections)")
    ap.add_argument("--tcp-depth", type=int, default=2, help="transport messages outstanding per connection")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--file-size", default="1GiB")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from dpsim.scenario.units import parse_bytes

    if a.rounds < 1 or a.streams < 1 or a.tcp_depth < 1:
        print(f"bench: --rounds, --streams and --tcp-depth must be at least 1 (got {a.rounds}, {a.streams}, "
              f"{a.tcp_depth})", file=sys.stderr)
        return 2
    out = []
    try:
        if a.which in ("tcp", "all"):
            out.append(bench_tcp(a.rounds, a.seconds, int(parse_bytes(a.tcp_size)), a.streams, a.tcp_depth))
        if a.which in ("storage", "all"):
            out.append(bench_storage(a.rounds, a.seconds, a.dir, int(parse_bytes(a.bs)), a.depth,
                                     int(parse_bytes(a.file_size))))
    except (CalibrateError, Unavailable) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    for rep in out:
        print(rep["what"])
        for i, (r, o) in enumerate(zip(rep["reference_Bps"], rep["ours_Bps"])):
            print(f"  round {i}: reference {r * 8 / 1e9:8.2f} Gbit/s ({r / 1e6:9.1f} MB/s)   "
                  f"ours {o * 8 / 1e9:8.2f} Gbit/s ({o / 1e6:9.1f} MB/s)")
        print(f"  median: reference {rep['reference_median_Bps'] / 1e6:.1f} MB/s, ours {rep['ours_median_Bps'] / 1e6:.1f} MB/s;"
              f" paired ratio ours/reference: median {rep['median_paired_ratio']:.3f}, worst "
              f"{rep['worst_paired_ratio']:.3f} ({len(rep['paired_ratios'])} rounds)")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
