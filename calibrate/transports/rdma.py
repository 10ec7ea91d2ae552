"""RDMA transport: pyverbs RC queue pairs, one-sided RDMA READ and WRITE, connection details
exchanged over a TCP socket, several outstanding work requests, optional doorbell batching
(a chain of WRs posted with one ``post_send``).

pyverbs must be the one built from the cluster's own rdma-core (it links private symbols of one
rdma-core release), so it is imported lazily and never required by CI. Both API generations are
supported: rdma-core >= 59 (``pyverbs.libibverbs_enums`` class-scoped enums) and <= 58
(``pyverbs.enums`` module constants, e.g. Debian 12's python3-pyverbs 44). With no device,
``get_device_list()`` raises ``PyverbsRDMAError`` (it does not return an empty list): that, an
ImportError (missing or ABI-mismatched pyverbs) and an OSError all become one
:class:`~calibrate.errors.Unavailable` line.
"""

from __future__ import annotations

import itertools
import json
import mmap
import random
import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

from ..errors import CalibrateError, Unavailable, one_line
from .base import Completion, Endpoint, Region, RemoteRegion, Transport
from .tcp import _recv_line, split_address

_ENUM_NAMES = {
    # attribute we use: (class in libibverbs_enums (>= 59), member / module constant (<= 58))
    "ACCESS_LOCAL_WRITE": ("ibv_access_flags", "IBV_ACCESS_LOCAL_WRITE"),
    "ACCESS_REMOTE_READ": ("ibv_access_flags", "IBV_ACCESS_REMOTE_READ"),
    "ACCESS_REMOTE_WRITE": ("ibv_access_flags", "IBV_ACCESS_REMOTE_WRITE"),
    "WR_RDMA_READ": ("ibv_wr_opcode", "IBV_WR_RDMA_READ"),
    "WR_RDMA_WRITE": ("ibv_wr_opcode", "IBV_WR_RDMA_WRITE"),
    "SEND_SIGNALED": ("ibv_send_flags", "IBV_SEND_SIGNALED"),
    "QPT_RC": ("ibv_qp_type", "IBV_QPT_RC"),
    "WC_SUCCESS": ("ibv_wc_status", "IBV_WC_SUCCESS"),
}


def import_pyverbs():
    """The pyverbs modules we use, or Unavailable with the reason in one line."""
    try:
        import pyverbs  # noqa: F401
        from pyverbs import addr, cq, device, mr, pd, qp, wr  # noqa: F401  (fail early on an ABI mismatch)
        from pyverbs.pyverbs_error import PyverbsRDMAError  # noqa: F401
    except ImportError as e:
        raise Unavailable(
            f"rdma transport unavailable: pyverbs is not importable ({one_line(e)}); install the pyverbs built "
            "from this host's rdma-core"
        ) from None
    except OSError as e:
        raise Unavailable(f"rdma transport unavailable: {one_line(e)}") from None
    import pyverbs as pv

    return pv


def enums(pv=None) -> SimpleNamespace:
    """Verbs constants under stable names for either pyverbs API generation."""
    out = {}
    try:
        import importlib

        new = importlib.import_module("pyverbs.libibverbs_enums")
        for k, (cls, member) in _ENUM_NAMES.items():
            out[k] = getattr(getattr(new, cls), member)
        out["api"] = "libibverbs_enums (rdma-core >= 59)"
    except (ImportError, AttributeError):
        try:
            import pyverbs.enums as old  # type: ignore
        except ImportError as e:
            raise Unavailable(f"rdma transport unavailable: no pyverbs enums module ({one_line(e)})") from None
        for k, (_, member) in _ENUM_NAMES.items():
            out[k] = getattr(old, member)
        out["api"] = "pyverbs.enums (rdma-core <= 58)"
    return SimpleNamespace(**out)


def probe(device: str | None = None) -> list[str]:
    """Names of the RDMA devices, or Unavailable('no RDMA device: ...') in one line."""
    import_pyverbs()
    from pyverbs import device as d
    from pyverbs.pyverbs_error import PyverbsRDMAError

    try:
        devs = d.get_device_list()
    except (PyverbsRDMAError, OSError) as e:
        raise Unavailable(f"no RDMA device: {one_line(e)}") from None
    names = [x.name.decode() if isinstance(x.name, bytes) else str(x.name) for x in devs]
    if not names:
        raise Unavailable("no RDMA device: the device list is empty")
    if device and device not in names:
        raise Unavailable(f"no RDMA device named {device} (have {', '.join(names)})")
    return names


class _Resources:
    """Context, PD, CQ of one device/port."""

    def __init__(self, device: str | None, port: int = 1, gid_index: int | None = None, cq_depth: int = 4096):
        names = probe(device)
        from pyverbs.cq import CQ
        from pyverbs.device import Context
        from pyverbs.pd import PD

        self.e = enums()
        self.name = device or names[0]
        self.port = port
        self.ctx = Context(name=self.name)
        self.pd = PD(self.ctx)
        self.cq = CQ(self.ctx, cq_depth, None, None, 0)
        pattr = self.ctx.query_port(port)
        self.lid = int(getattr(pattr, "lid", 0))
        self.mtu = int(getattr(pattr, "active_mtu", 5))  # 5 = IBV_MTU_4096
        self.link_layer = int(getattr(pattr, "link_layer", 1))
        self.gid_index = gid_index
        self.gid = str(self.ctx.query_gid(port, gid_index)) if gid_index is not None else None
        dattr = self.ctx.query_device()
        self.max_rd_atom = int(getattr(dattr, "max_qp_rd_atom", 16))

    def register(self, buf, name: str = "") -> Region:
        from pyverbs.mr import MR

        if isinstance(buf, int):
            buf = mmap.mmap(-1, buf)
        view = memoryview(buf).cast("B")
        import ctypes

        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf)) if not view.readonly else None
        access = self.e.ACCESS_LOCAL_WRITE | self.e.ACCESS_REMOTE_READ | self.e.ACCESS_REMOTE_WRITE
        mr = MR(self.pd, view.nbytes, access, address=addr)
        return Region(view, mr.lkey, name, handle=mr)

    def make_qp(self, depth: int):
        from pyverbs.qp import QP, QPAttr, QPCap, QPInitAttr

        cap = QPCap(max_send_wr=depth, max_recv_wr=1, max_send_sge=1, max_recv_sge=1)
        init = QPInitAttr(qp_type=self.e.QPT_RC, scq=self.cq, rcq=self.cq, cap=cap)
        return QP(self.pd, init, QPAttr(port_num=self.port))

    def local_info(self, qp, psn: int) -> dict:
        return {"lid": self.lid, "gid": self.gid, "qpn": qp.qp_num, "psn": psn, "mtu": self.mtu}

    def to_rts(self, qp, local_psn: int, remote: dict, sl: int = 0) -> None:
        from pyverbs.addr import GID, AHAttr, GlobalRoute
        from pyverbs.qp import QPAttr

        attr = QPAttr(port_num=self.port)
        attr.path_mtu = min(self.mtu, int(remote["mtu"]))  # default would be 1024: a bandwidth pitfall
        attr.dest_qp_num = int(remote["qpn"])
        attr.rq_psn = int(remote["psn"])
        attr.sq_psn = local_psn
        attr.max_dest_rd_atomic = self.max_rd_atom
        attr.max_rd_atomic = self.max_rd_atom
        attr.qp_access_flags = self.e.ACCESS_LOCAL_WRITE | self.e.ACCESS_REMOTE_READ | self.e.ACCESS_REMOTE_WRITE
        attr.timeout, attr.retry_cnt, attr.rnr_retry, attr.min_rnr_timer = 14, 7, 7, 12
        if remote.get("gid") and self.gid_index is not None:
            gr = GlobalRoute(dgid=GID(remote["gid"]), sgid_index=self.gid_index)
            attr.ah_attr = AHAttr(gr=gr, is_global=1, port_num=self.port, sl=sl)
        else:
            attr.ah_attr = AHAttr(dlid=int(remote["lid"]), port_num=self.port, sl=sl)  # SL -> VL via SL2VL
        qp.to_rts(attr)


def encode_exchange(info: dict, regions: dict[str, Any]) -> bytes:
    """The out-of-band message: QP details plus {name: [addr, rkey, length]} for every region."""
    regs = {}
    for n, r in regions.items():
        import ctypes

        addr = ctypes.addressof(ctypes.c_char.from_buffer(r.buf.obj)) if r.handle is None else r.handle.buf
        regs[n] = [int(addr), int(r.handle.rkey if r.handle is not None else 0), r.length]
    return (json.dumps({**info, "regions": regs}) + "\n").encode()


def decode_exchange(line: bytes) -> tuple[dict, dict[str, RemoteRegion]]:
    msg = json.loads(line)
    regions = {n: RemoteRegion(n, key=int(rkey), length=int(ln), addr=int(a), rkey=int(rkey))
               for n, (a, rkey, ln) in msg.pop("regions", {}).items()}
    return msg, regions


class RdmaEndpoint(Endpoint):
    def __init__(self, res: _Resources, qp, regions: dict[str, RemoteRegion], sock: socket.socket, depth: int,
                 doorbell: int = 1, signal_every: int = 1):
        self.res, self.qp, self.remote_regions, self.sock = res, qp, regions, sock
        self.depth, self.doorbell, self.signal_every = depth, max(1, doorbell), max(1, signal_every)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple] = {}
        self._chain: list = []

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def _post(self, opcode, op, local, local_off, remote, remote_off, length, wr_id):
        from pyverbs.wr import SGE, SendWR

        if local_off + length > local.length or remote_off + length > remote.length:
            raise ValueError("RDMA range outside a registered region")
        wr_id = next(self._ids) if wr_id is None else wr_id
        sge = SGE(local.handle.buf + local_off, length, local.handle.lkey)
        wr = SendWR(wr_id=wr_id, opcode=opcode, num_sge=1, sg=[sge], send_flags=self.res.e.SEND_SIGNALED)
        wr.set_wr_rdma(remote.rkey, remote.addr + remote_off)
        self._pending[wr_id] = (op, length, time.perf_counter())
        self._chain.append(wr)
        if len(self._chain) >= self.doorbell:
            self.flush()
        return wr_id

    def flush(self) -> None:
        """Post the pending chain with one doorbell."""
        if not self._chain:
            return
        for a, b in zip(self._chain, self._chain[1:]):
            a.next_wr = b  # pyverbs SendWR.next_wr setter links the ibv_send_wr list
        self.qp.post_send(self._chain[0])
        self._chain = []

    def post_read(self, local, local_off, remote, remote_off, length, wr_id=None) -> int:
        return self._post(self.res.e.WR_RDMA_READ, "read", local, local_off, remote, remote_off, length, wr_id)

    def post_write(self, local, local_off, remote, remote_off, length, wr_id=None) -> int:
        return self._post(self.res.e.WR_RDMA_WRITE, "write", local, local_off, remote, remote_off, length, wr_id)

    def poll(self, max_n: int = 64) -> list[Completion]:
        self.flush()
        n, wcs = self.res.cq.poll(max_n)
        out = []
        for wc in wcs[:n] if n else []:
            op, length, t = self._pending.pop(wc.wr_id, ("?", 0, 0.0))
            if wc.status != self.res.e.WC_SUCCESS:
                raise CalibrateError(f"rdma {op} of {length} B failed: work completion status {wc.status}")
            out.append(Completion(wc.wr_id, op, length, 0, t, time.perf_counter()))
        return out

    def wait(self, n: int = 1) -> list[Completion]:
        out: list[Completion] = []
        deadline = time.monotonic() + 30
        while len(out) < n:
            out += self.poll(n - len(out))
            if time.monotonic() > deadline:
                raise CalibrateError("rdma: no completion within 30 s")
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class RdmaTransport(Transport):
    name = "rdma"

    def __init__(self, device: str | None = None, port: int = 1, gid_index: int | None = None, depth: int = 128,
                 doorbell: int = 1, sl: int = 0):
        self.res = _Resources(device, port, gid_index)
        self.depth, self.doorbell, self.sl = depth, doorbell, sl

    def register(self, buf, name: str = "") -> Region:
        return self.res.register(buf, name)

    def connect(self, address: str, priority: int | None = None, **_) -> RdmaEndpoint:
        host, port = split_address(address)
        sock = socket.create_connection((host, port), timeout=30)
        qp = self.res.make_qp(self.depth)
        psn = random.randrange(1 << 24)
        sock.sendall((json.dumps({**self.res.local_info(qp, psn), "regions": {}}) + "\n").encode())
        remote, regions = decode_exchange(_recv_line(sock))
        self.res.to_rts(qp, psn, remote, sl=self.sl if priority is None else int(priority))
        if sock.recv(1) != b"R":  # the server's QP is ready to receive before we post
            raise CalibrateError(f"rdma: {address} closed the exchange before its QP was ready")
        return RdmaEndpoint(self.res, qp, regions, sock, self.depth, self.doorbell)

    def versions(self) -> dict:
        import pyverbs

        return {"pyverbs": getattr(pyverbs, "__version__", "unknown"), "enums": self.res.e.api,
                "device": self.res.name, "mtu_enum": self.res.mtu, "max_rd_atom": self.res.max_rd_atom}


class RdmaServer:
    """Passive side: registers regions, answers the exchange and brings a QP to RTS per client.
    One-sided verbs need no server CPU afterwards."""

    def __init__(self, listen: str, device: str | None = None, port: int = 1, gid_index: int | None = None):
        self.res = _Resources(device, port, gid_index)
        host, p = split_address(listen, 18515)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, p))
        self.sock.listen(64)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self.regions: dict[str, Region] = {}
        self.qps: list = []

    def add_buffer(self, name: str, buf) -> None:
        """Register the caller's buffer (writable: RDMA WRITEs land in it)."""
        self.regions[name] = self.res.register(buf, name)

    def add_directory(self, directory) -> int:
        raise CalibrateError("the rdma server serves memory regions only; read block files with `storage`")

    def start(self) -> RdmaServer:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            remote, _ = decode_exchange(_recv_line(conn))
            qp = self.res.make_qp(16)
            psn = random.randrange(1 << 24)
            conn.sendall(encode_exchange(self.res.local_info(qp, psn), self.regions))
            self.res.to_rts(qp, psn, remote)
            conn.sendall(b"R")
            self.qps.append((qp, conn))

    def close(self) -> None:
        self.sock.close()
