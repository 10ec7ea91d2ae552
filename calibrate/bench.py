"""Side-by-side benchmarks against the reference tools (not a unit test; run by hand):

* ``tcp``:     iperf3 over loopback (one stream, 5 s) versus the TCP transport's READ stream over
               loopback (one connection, 4 MiB messages, depth 2), alternating rounds;
* ``storage``: fio (``psync``, ``O_DIRECT``, random block-aligned reads, ``numjobs`` = queue depth)
               versus the ``odirect`` reader on the same file with the same block size and depth.

``python -m calibrate.bench tcp|storage|all [--rounds 3] [--json out.json]``

Each round runs the reference tool and ours back to back; the report gives every round and the
medians, and the ratio ours / reference.
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


def iperf3_loopback(seconds: float = 5.0) -> float:
    """bytes/s received by one iperf3 stream over 127.0.0.1."""
    if not shutil.which("iperf3"):
        raise Unavailable("iperf3 is not installed (apt-get install iperf3)")
    port = _free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                             capture_output=True, text=True, timeout=seconds + 30)
        data = json.loads(out.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 8
    finally:
        srv.kill()
        srv.wait()


def tcp_transport_loopback(seconds: float = 5.0, size: int = 4 << 20, depth: int = 2) -> float:
    """bytes/s of one TCP-transport connection streaming READs over 127.0.0.1."""
    from .transports import get_transport, transfer_batch
    from .transports.tcp import TcpServer

    with TcpServer("127.0.0.1:0") as srv:
        srv.add_buffer("mem", bytearray(64 << 20))
        srv.start()
        tr = get_transport("tcp")
        ep = tr.connect(srv.address)
        local = tr.register(bytearray(size * depth))
        remote = ep.remote("mem")
        transfer_batch(ep, "read", local, remote, size, 8, depth)  # warm-up
        moved, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            transfer_batch(ep, "read", local, remote, size, 32, depth)
            moved += 32 * size
        rate = moved / (time.perf_counter() - t0)
        ep.close()
        return rate


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


def bench_tcp(rounds: int, seconds: float) -> dict:
    ref, ours = [], []
    for i in range(rounds):
        if i % 2:
            ours.append(tcp_transport_loopback(seconds))
            ref.append(iperf3_loopback(seconds))
        else:
            ref.append(iperf3_loopback(seconds))
            ours.append(tcp_transport_loopback(seconds))
    return _report("tcp loopback: iperf3 (1 stream) vs TCP transport (1 connection, READ 4 MiB, depth 2)", ref, ours)


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
    return {"what": what, "reference_Bps": ref, "ours_Bps": ours, "reference_median_Bps": r, "ours_median_Bps": o,
            "ratio": o / r}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibrate.bench")
    ap.add_argument("which", choices=["tcp", "storage", "all"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--dir", default=None, help="directory for the storage test file (default /var/tmp/...)")
    ap.add_argument("--bs", default="4MiB")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--file-size", default="1GiB")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from dpsim.scenario.units import parse_bytes

    out = []
    try:
        if a.which in ("tcp", "all"):
            out.append(bench_tcp(a.rounds, a.seconds))
        if a.which in ("storage", "all"):
            out.append(bench_storage(a.rounds, a.seconds, a.dir, int(parse_bytes(a.bs)), a.depth,
                                     int(parse_bytes(a.file_size))))
    except CalibrateError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    for rep in out:
        print(rep["what"])
        for i, (r, o) in enumerate(zip(rep["reference_Bps"], rep["ours_Bps"])):
            print(f"  round {i}: reference {r * 8 / 1e9:8.2f} Gbit/s ({r / 1e6:9.1f} MB/s)   "
                  f"ours {o * 8 / 1e9:8.2f} Gbit/s ({o / 1e6:9.1f} MB/s)")
        print(f"  median: reference {rep['reference_median_Bps'] / 1e6:.1f} MB/s, ours {rep['ours_median_Bps'] / 1e6:.1f} MB/s,"
              f" ratio {rep['ratio']:.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
