"""Ground truth on a single Linux host: three network namespaces joined by veth pairs with known
``tc`` rates (needs root, ``ip netns``, the tbf and htb qdiscs; no kernel modules, no netem).

::

    storage (st) --[storage link, tbf S_pe]--> prefill (pe)
    storage (st) --[storage link, tbf S_de]--> decode  (de)
    decode  (de) --[compute link, tbf C or htb C with two classes]--> prefill (pe)

Rates shape the *sender's egress* (storage -> hosts, decode -> prefill), i.e. the direction KV
moves in. Expected TCP goodput under a rate R is R x MSS / (MSS + 66) (tc counts L2 bytes).
With ``priority=True`` the compute link carries an htb tree whose classes are selected by
SO_PRIORITY (no classifiers needed): class 1:10 (high, "collectives") and 1:20 (low, KV), both
allowed the full rate, the high one guaranteed ``1 - low_share`` of it, high served first
(strict priority with work conservation: the InfiniBand virtual-lane stand-in).

Latency ground truth is a delay injected by the servers (netem does not exist on these kernels).
Traffic stays between the namespaces; :meth:`Testbed.down` deletes them.

Command line: ``python -m calibrate.testbed up|down|check [--prefix P] [--storage-rate 200Mbit/s] ...``
(the by-hand recipe is in docs/calibration.md, "The test bed by hand").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dpsim.scenario.units import parse_bandwidth

from .errors import CalibrateError, Unavailable
from .fit import expected_tcp_goodput

ROOT = Path(__file__).resolve().parent.parent
# Default tc rates (docs/calibration.md#ground-truth-on-one-machine-the-namespace-test-bed): four
# Python processes on a loaded 2-core host keep up with 200 Mbit/s storage links (97-99.7 % of the
# sum on both paths, 5 sessions) but not with 2 x 1 Gbit/s (71-81 %, while each link alone fits
# within 3 %); the compute link is 4x a storage link so the DE path's forwarding never limits it.
DEFAULT_STORAGE_RATE = "200Mbit/s"
DEFAULT_COMPUTE_RATE = "800Mbit/s"
# The shaper's token bucket (docs/calibration.md#the-token-bucket): it must hold a veth GSO packet (up
# to 64 KiB) and the bytes the link carries while the qdisc watchdog waits to be woken on a loaded
# host, or tokens overflow and goodput collapses (bulk TCP at 800 Mbit/s, load ~10: a bucket of
# 100 us of the rate gave 0.40-0.63 of the expected goodput, one of 4 ms 1.00). Measured over
# 200 Mbit/s-1 Gbit/s for tbf and the htb tree (docs/calibration.md, the table there).
BUCKET_S = 4e-3  # seconds of the rate
MIN_BUCKET_BYTES = 128 * 1024  # above a 64 KiB GSO packet
HIGH_PRIORITY = 0x10010  # skb->priority = htb class 1:10
LOW_PRIORITY = 0x10020  # class 1:20


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise CalibrateError(f"{' '.join(cmd)}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def netns_available() -> tuple[bool, str]:
    """Whether namespaces, veth and tbf/htb can be used here, and why not."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False, "iproute2 (ip, tc) is not installed"
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    name = f"dpcprobe{os.getpid() % 100000}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return False, f"'ip netns add' failed: {p.stderr.strip()}"
    try:
        p = subprocess.run(["ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return False, f"veth pairs unavailable: {p.stderr.strip()}"
        for q in (["tbf", "rate", "100mbit", "burst", "16kb", "latency", "50ms"], ["htb", "default", "20"]):
            p = subprocess.run(["ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", "v0", "root", *q],
                               capture_output=True, text=True)
            if p.returncode != 0:
                return False, f"tc qdisc {q[0]} unavailable: {p.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def bucket_bytes(rate_bytes_per_s: float) -> int:
    """The test bed's token bucket for a rate: BUCKET_S of it, at least MIN_BUCKET_BYTES."""
    return max(MIN_BUCKET_BYTES, int(rate_bytes_per_s * BUCKET_S))


def tc_rate(bytes_per_s: float) -> str:
    return f"{int(round(bytes_per_s * 8))}bit"


@dataclass
class Link:
    name: str
    src: str  # namespace role that sends the shaped direction
    dst: str
    src_ip: str
    dst_ip: str
    rate: float | None  # bytes/s, None = unshaped
    priority: bool = False
    bucket: int = 0  # bytes of the shaper's token bucket: what crosses at once after an idle period

    @property
    def refill_s(self) -> float:
        """Seconds an idle link takes to fill its bucket again."""
        return 0.0 if not self.rate else self.bucket / self.rate

    @property
    def goodput(self) -> float | None:
        return None if self.rate is None else expected_tcp_goodput(self.rate)


@dataclass
class Testbed:
    storage_rate: str | float = DEFAULT_STORAGE_RATE
    storage_rate_de: str | float | None = None  # defaults to storage_rate
    compute_rate: str | float = DEFAULT_COMPUTE_RATE
    priority: bool = False
    low_share: float = 0.01
    prefix: str | None = None
    burst: int | None = None  # bytes of every link's token bucket; default bucket_bytes(rate)
    links: dict[str, Link] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    _up: bool = False

    def __post_init__(self):
        self.prefix = self.prefix or f"dpc{os.getpid() % 100000}"
        for role in ("st", "pe", "de"):
            self.namespaces[role] = f"{self.prefix}{role}"
        s_pe = parse_bandwidth(_bw(self.storage_rate))
        s_de = parse_bandwidth(_bw(self.storage_rate_de)) if self.storage_rate_de is not None else s_pe
        comp = parse_bandwidth(_bw(self.compute_rate))
        self.links = {
            "storage_pe": Link("storage_pe", "st", "pe", "10.199.1.1", "10.199.1.2", s_pe),
            "storage_de": Link("storage_de", "st", "de", "10.199.2.1", "10.199.2.2", s_de),
            "compute": Link("compute", "de", "pe", "10.199.3.1", "10.199.3.2", comp, self.priority),
        }
        for link in self.links.values():
            link.bucket = int(self.burst or bucket_bytes(link.rate)) if link.rate else 0

    # ------------------------------------------------------------------------------------------
    def ns(self, role: str) -> str:
        return self.namespaces[role]

    def _dev(self, link: Link, side: str) -> str:
        # interface names <= 15 chars and unique in the root namespace while being created
        return f"{self.prefix}{link.name[0]}{link.name[-2:]}{side}"[-15:]

    def up(self) -> Testbed:
        ok, reason = netns_available()
        if not ok:
            raise Unavailable(f"network namespaces unavailable: {reason}")
        self.down(quiet=True)
        try:
            for ns in self.namespaces.values():
                _run(["ip", "netns", "add", ns])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            for link in self.links.values():
                a, b = self._dev(link, "a"), self._dev(link, "b")
                _run(["ip", "link", "add", a, "netns", self.ns(link.src), "type", "veth", "peer", "name", b,
                      "netns", self.ns(link.dst)])
                _run(["ip", "-n", self.ns(link.src), "addr", "add", f"{link.src_ip}/24", "dev", a])
                _run(["ip", "-n", self.ns(link.dst), "addr", "add", f"{link.dst_ip}/24", "dev", b])
                for ns, dev in ((self.ns(link.src), a), (self.ns(link.dst), b)):
                    _run(["ip", "-n", ns, "link", "set", dev, "up"])
                if link.rate is not None:
                    self._shape(link, a)
            self._up = True
        except Exception:
            self.down(quiet=True)
            raise
        return self

    def _shape(self, link: Link, dev: str) -> None:
        ns = self.ns(link.src)
        rate = tc_rate(link.rate)
        burst = link.bucket
        tc = ["ip", "netns", "exec", ns, "tc"]
        if not link.priority:
            _run(tc + ["qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", str(burst), "latency", "200ms"])
            return
        low = link.rate * self.low_share
        high = link.rate - low
        _run(tc + ["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "20"])
        _run(tc + ["class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate,
                   "burst", str(burst), "cburst", str(burst)])
        _run(tc + ["class", "add", "dev", dev, "parent", "1:1", "classid", "1:10", "htb", "rate", tc_rate(high),
                   "ceil", rate, "prio", "0", "burst", str(burst), "cburst", str(burst)])
        _run(tc + ["class", "add", "dev", dev, "parent", "1:1", "classid", "1:20", "htb", "rate", tc_rate(low),
                   "ceil", rate, "prio", "1", "burst", str(burst), "cburst", str(burst)])

    def down(self, quiet: bool = False) -> None:
        for ns in self.namespaces.values():
            p = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if p.returncode != 0 and not quiet and "No such file" not in p.stderr:
                raise CalibrateError(f"ip netns del {ns}: {p.stderr.strip()}")
        self._up = False

    def __enter__(self) -> Testbed:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down(quiet=True)

    # ------------------------------------------------------------------------------------------
    def command(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), *argv]

    def python(self, role: str, module_args: list[str]) -> list[str]:
        return self.command(role, [sys.executable, "-m", *module_args])

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env

    def spawn(self, role: str, module_args: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.python(role, module_args), env=self.env(), **kw)

    def run(self, role: str, module_args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        p = subprocess.run(self.python(role, module_args), env=self.env(), capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise CalibrateError(f"{' '.join(module_args)} in {role} failed: {(p.stderr or p.stdout).strip()[-2000:]}")
        return p

    def describe(self) -> dict:
        return {
            "prefix": self.prefix,
            "namespaces": dict(self.namespaces),
            "links": {
                n: {"src": l.src, "dst": l.dst, "src_ip": l.src_ip, "dst_ip": l.dst_ip, "rate": l.rate,
                    "expected_goodput": l.goodput, "priority": l.priority, "bucket_bytes": l.bucket}
                for n, l in self.links.items()
            },
            "low_share": self.low_share if self.priority else None,
        }


def _bw(v) -> str | float:
    if isinstance(v, str) and v.lower().endswith("bit"):
        return v[:-3] + "bit/s"
    return v


def start_server(bed: Testbed, role: str, listen_ip: str, args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start ``dpsim-calibrate serve`` in a namespace; returns (process, address) once it listens."""
    p = bed.spawn(role, ["calibrate.cli", "serve", "--listen", f"{listen_ip}:0", *args], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("LISTENING "):
        p.kill()
        err = p.stderr.read()
        raise CalibrateError(f"server in {role} did not start: {line.strip()} {err.strip()[-500:]}")
    return p, line.split()[1]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m calibrate.testbed")
    ap.add_argument("action", choices=["up", "down", "check"])
    ap.add_argument("--prefix", default="dpcal")
    ap.add_argument("--storage-rate", default=DEFAULT_STORAGE_RATE)
    ap.add_argument("--compute-rate", default=DEFAULT_COMPUTE_RATE)
    ap.add_argument("--priority", action="store_true")
    a = ap.parse_args(argv)
    if a.action == "check":
        ok, reason = netns_available()
        print("ok" if ok else f"unavailable: {reason}")
        return 0 if ok else 1
    bed = Testbed(a.storage_rate, None, a.compute_rate, priority=a.priority, prefix=a.prefix)
    if a.action == "up":
        bed.up()
        print(json.dumps(bed.describe(), indent=2))
    else:
        bed.down(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
