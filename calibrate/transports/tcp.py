"""TCP transport: RDMA-like one-sided READ/WRITE over a stream socket. Runs anywhere.

Wire format (network byte order). After connecting, the client sends one JSON line
``{"priority": p}`` and the server answers one JSON line ``{"regions": {name: [key, length]}}``
(the out-of-band exchange). Then:

request  ``!BBHIQQQ``  op (1 read, 2 write), 0, 0, region key, offset, length, wr_id
         a WRITE request is followed by ``length`` payload bytes
response ``!BBHIQQ``   op, status (0 ok, 1 bad key/range), 0, 0, wr_id, length
         a successful READ response is followed by ``length`` payload bytes

The server handles the requests of one connection in order, so completions arrive in posting
order. Server regions are memory buffers or files (served with ``os.sendfile``); a server can inject
a fixed delay into each request (before a READ's response, before a WRITE's completion: a known
latency on both directions, the ground truth for fitting on test beds) and
marks its sending socket with the SO_PRIORITY the client asked for (selects an htb class).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import CalibrateError
from .base import Completion, Endpoint, Region, RemoteRegion, Transport

REQ = struct.Struct("!BBHIQQQ")
RSP = struct.Struct("!BBHIQQ")
OP_READ, OP_WRITE = 1, 2
_OPS = {OP_READ: "read", OP_WRITE: "write"}
SOCKBUF = 8 << 20
CHUNK = 4 << 20
RECV_FLAGS = 0  # socket.MSG_WAITALL measured no better on the test bed


def _tune(sock: socket.socket, priority: int | None = None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF) if SOCKBUF else ():
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKBUF)
        except OSError:
            pass
    if priority is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, int(priority))


def recv_exact(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view``. MSG_WAITALL keeps the wait in the kernel: one wake-up of the Python thread per
    chunk instead of one per few segments, which matters with several busy threads and the GIL."""
    got, n = 0, view.nbytes
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, CHUNK), RECV_FLAGS)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k


def recv_discard(sock: socket.socket, n: int, scratch: memoryview) -> None:
    while n > 0:
        k = sock.recv_into(scratch, min(n, scratch.nbytes))
        if k == 0:
            raise ConnectionError("peer closed the connection")
        n -= k


def _recv_line(sock: socket.socket) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise ConnectionError("peer closed during the exchange")
        data += b
        if len(data) > 1 << 20:
            raise CalibrateError("exchange line too long")
    return bytes(data)


def split_address(address: str, default_port: int = 18515) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, default_port
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------------------------------- server
class _FileRegion:
    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.length = os.fstat(self.fd).st_size


class TcpServer:
    """Passive side: advertises regions, serves READ/WRITE requests, one thread per connection."""

    def __init__(self, listen: str = "127.0.0.1:0", delay_s: float = 0.0):
        host, port = split_address(listen, 0)
        self.delay_s = float(delay_s)
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self._regions: dict[int, Any] = {}  # a memoryview or a _FileRegion
        self._names: dict[str, int] = {}
        self._keys = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.requests = 0

    def add_buffer(self, name: str, buf) -> int:
        view = memoryview(buf).cast("B")
        key = next(self._keys)
        self._regions[key] = view
        self._names[name] = key
        return key

    def add_file(self, name: str, path: str | Path) -> int:
        key = next(self._keys)
        self._regions[key] = _FileRegion(Path(path))
        self._names[name] = key
        return key

    def add_directory(self, directory: str | Path) -> int:
        n = 0
        for p in sorted(Path(directory).iterdir()):
            if p.is_file():
                self.add_file(p.name, p)
                n += 1
        return n

    def _length(self, region) -> int:
        return region.length if isinstance(region, _FileRegion) else region.nbytes

    def start(self) -> TcpServer:
        t = threading.Thread(target=self.serve_forever, daemon=True, name="tcp-server")
        t.start()
        self._threads.append(t)
        return self

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            t = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True, name="tcp-conn")
            t.start()
            self._threads.append(t)

    def _serve_conn(self, conn: socket.socket) -> None:
        try:
            hello = json.loads(_recv_line(conn))
            _tune(conn, hello.get("priority"))
            regions = {n: [k, self._length(self._regions[k])] for n, k in self._names.items()}
            conn.sendall((json.dumps({"regions": regions}) + "\n").encode())
            hdr = bytearray(REQ.size)
            hview = memoryview(hdr)
            scratch = memoryview(bytearray(1 << 20))
            while True:
                try:
                    recv_exact(conn, hview)
                except ConnectionError:
                    return
                op, _, _, key, off, length, wr_id = REQ.unpack(hdr)
                self.requests += 1
                region = self._regions.get(key)
                ok = region is not None and off + length <= self._length(region)
                if op == OP_WRITE:
                    if ok and not isinstance(region, _FileRegion):
                        recv_exact(conn, region[off : off + length])
                    elif ok:
                        left, pos = length, off
                        while left:
                            k = min(left, scratch.nbytes)
                            recv_exact(conn, scratch[:k])
                            os.pwrite(region.fd, scratch[:k], pos)
                            left -= k
                            pos += k
                    else:
                        recv_discard(conn, length, scratch)
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    conn.sendall(RSP.pack(op, 0 if ok else 1, 0, 0, wr_id, length))
                    continue
                if self.delay_s:
                    time.sleep(self.delay_s)
                if not ok:
                    conn.sendall(RSP.pack(op, 1, 0, 0, wr_id, 0))
                    continue
                conn.sendall(RSP.pack(op, 0, 0, 0, wr_id, length))
                if isinstance(region, _FileRegion):
                    sent = 0
                    while sent < length:
                        k = os.sendfile(conn.fileno(), region.fd, off + sent, length - sent)
                        if k == 0:
                            raise ConnectionError("sendfile sent nothing")
                        sent += k
                else:
                    conn.sendall(region[off : off + length])
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for r in self._regions.values():
            if isinstance(r, _FileRegion):
                os.close(r.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------- client
class TcpEndpoint(Endpoint):
    def __init__(self, sock: socket.socket, regions: dict[str, RemoteRegion]):
        self.sock = sock
        self.remote_regions = regions
        self._pending: deque = deque()
        self._ready: deque[Completion] = deque()
        self._ids = itertools.count(1)
        self._hdr = bytearray(RSP.size)
        self._lock = threading.Lock()

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def _post(self, op: int, local: Region, local_off: int, remote: RemoteRegion, remote_off: int, length: int,
              wr_id: int | None) -> int:
        if local_off + length > local.length:
            raise ValueError(f"local range {local_off}+{length} exceeds region of {local.length} bytes")
        wr_id = next(self._ids) if wr_id is None else wr_id
        with self._lock:
            if op == OP_WRITE and any(p[1] == OP_READ for p in self._pending):
                # drain outstanding READ payloads first so that the two directions cannot deadlock
                self._drain_reads()
            t = time.perf_counter()
            self.sock.sendall(REQ.pack(op, 0, 0, remote.key, remote_off, length, wr_id))
            if op == OP_WRITE:
                self.sock.sendall(local.buf[local_off : local_off + length])
            self._pending.append((wr_id, op, local, local_off, length, t))
        return wr_id

    def post_read(self, local, local_off, remote, remote_off, length, wr_id=None) -> int:
        return self._post(OP_READ, local, local_off, remote, remote_off, length, wr_id)

    def post_write(self, local, local_off, remote, remote_off, length, wr_id=None) -> int:
        return self._post(OP_WRITE, local, local_off, remote, remote_off, length, wr_id)

    def _complete_one(self) -> Completion:
        wr_id, op, local, local_off, length, t = self._pending.popleft()
        recv_exact(self.sock, memoryview(self._hdr))
        rop, status, _, _, rid, rlen = RSP.unpack(self._hdr)
        if rid != wr_id or rop != op:
            raise CalibrateError(f"tcp transport: completion {rid} out of order (expected {wr_id})")
        if op == OP_READ and status == 0:
            recv_exact(self.sock, local.buf[local_off : local_off + rlen])
        c = Completion(wr_id, _OPS[op], length, status, t, time.perf_counter())
        if status:
            raise CalibrateError(f"tcp transport: {c.op} of {length} B rejected by the peer (bad region or range)")
        return c

    def _drain_reads(self) -> None:
        while any(p[1] == OP_READ for p in self._pending):
            self._ready.append(self._complete_one())

    def poll(self, max_n: int = 64) -> list[Completion]:
        out: list = []
        with self._lock:
            while self._ready and len(out) < max_n:
                out.append(self._ready.popleft())
            self.sock.setblocking(False)
            try:
                while self._pending and len(out) < max_n:
                    try:
                        n = self.sock.recv(1, socket.MSG_PEEK)
                    except BlockingIOError:
                        break
                    if not n:
                        raise ConnectionError("peer closed the connection")
                    self.sock.setblocking(True)
                    out.append(self._complete_one())
                    self.sock.setblocking(False)
            finally:
                self.sock.setblocking(True)
        return out

    def wait(self, n: int = 1) -> list[Completion]:
        out: list = []
        with self._lock:
            while self._ready and len(out) < n:
                out.append(self._ready.popleft())
            while len(out) < n:
                if not self._pending:
                    raise CalibrateError("wait() with nothing outstanding")
                out.append(self._complete_one())
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class TcpTransport(Transport):
    name = "tcp"

    def __init__(self):
        self._keys = itertools.count(1)

    def register(self, buf, name: str = "") -> Region:
        return Region(memoryview(buf).cast("B"), next(self._keys), name)

    def connect(self, address: str, priority: int | None = None, timeout: float = 10.0, **_) -> TcpEndpoint:
        host, port = split_address(address)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise CalibrateError(f"tcp transport: cannot connect to {address}: {e}") from None
                time.sleep(0.05)
        sock.settimeout(None)
        _tune(sock, priority)
        sock.sendall((json.dumps({"priority": priority}) + "\n").encode())
        info = json.loads(_recv_line(sock))
        regions = {n: RemoteRegion(n, int(k), int(ln)) for n, (k, ln) in info["regions"].items()}
        return TcpEndpoint(sock, regions)

    def versions(self) -> dict:
        return {"transport": "tcp"}
