"""The decode host's half of the dual-path loader (``dpsim-calibrate decode-agent``): DE-path
requests from a prefill host are read from storage into this host's buffer and forwarded as Layer
Block writes over the compute link into the prefill host's target region (calibrate.loader has the
prefill side, the request plan and the raw records)."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time

from .errors import CalibrateError
from .loader import WARMUP_BLOCKS, LoaderConfig
from .transports import get_transport
from .transports.files import connect_storage
from .transports.tcp import _recv_line, split_address

WRITE_WINDOW = 64  # outstanding layer-block writes per DE worker before draining completions
DE_BUFFERS = 3  # Full Block buffers per DE worker (read one while forwarding others)

_TRACE = os.environ.get("DPSIM_CAL_TRACE")


def _trace(what: str, a, b) -> None:
    """Debug timeline of the decode agent (DPSIM_CAL_TRACE=FILE)."""
    if _TRACE:
        with open(_TRACE, "a") as fh:
            fh.write(f"{time.perf_counter():.6f} {what} {a} {b}\n")


def job_warm_slot(cfg: LoaderConfig) -> int:
    return 0  # warm-up writes land in slot 0, which the timed run overwrites



class DecodeAgent:
    """Serves DE-path requests from one prefill host: read Full Blocks from storage into this host's
    buffer, write them as Layer Blocks into the prefill host's target region."""

    def __init__(self, listen: str, storage_addr: str):
        host, port = split_address(listen, 18600)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self.storage_addr = storage_addr

    def serve(self, duration: float | None = None) -> None:
        print(f"LISTENING {self.address}", flush=True)
        if duration:
            self.sock.settimeout(duration)
        while True:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            setup = json.loads(_recv_line(conn))
            cfg = LoaderConfig(**setup["config"])
            tr = get_transport(cfg.transport)
            jobs: queue.Queue = queue.Queue()
            send_lock = threading.Lock()

            ready = threading.Barrier(cfg.depth + 1)
            failures: list[BaseException] = []

            def worker():
                try:
                    st = connect_storage(self.storage_addr, tr)
                    pe = tr.connect(setup["target"], priority=setup.get("priority"))
                    target = pe.remote("target")
                    bufs = [tr.register(bytearray(cfg.stride)) for _ in range(DE_BUFFERS)]
                    slices = cfg.layer_slices()
                    fname = min(n for n in st.remote_regions if n.startswith(cfg.files))
                    for _ in range(WARMUP_BLOCKS):  # connection set-up and slow start stay out of the run
                        st.post_read(bufs[0], 0, st.remote(fname), 0, cfg.block_size)
                        st.wait(1)
                        pe.post_write(bufs[0], 0, target, job_warm_slot(cfg), cfg.block_size)
                        pe.wait(1)
                except BaseException as e:  # noqa: BLE001
                    failures.append(e)
                    ready.wait()
                    return
                ready.wait()
                # storage reads and layer-block forwarding overlap: a forwarder thread per worker
                # sends blocks out of a pool of DE_BUFFERS buffers while the next one is read
                free: queue.Queue = queue.Queue()
                for b in range(DE_BUFFERS):
                    free.put(b)
                fwd: queue.Queue = queue.Queue()

                def forwarder():
                    while True:
                        item = fwd.get()
                        if item is None:
                            return
                        b, base, last = item
                        _trace("fwd_start", base, 0)
                        for loff, ln in slices:
                            pe.post_write(bufs[b], loff, target, base + loff, ln)
                            if pe.outstanding > WRITE_WINDOW:
                                pe.wait(1)
                        if pe.outstanding:
                            pe.wait(pe.outstanding)  # the buffer may be reused once its writes completed
                        free.put(b)
                        if last is not None:
                            last.set()

                ft = threading.Thread(target=forwarder, daemon=True)
                ft.start()
                while True:
                    job = jobs.get()
                    if job is None:
                        break
                    _trace("job", job["id"], 0)
                    done = threading.Event()
                    nblk = len(job["blocks"])
                    for j, (fname, off) in enumerate(job["blocks"]):
                        b = free.get()
                        _trace("read_start", job["id"], j)
                        st.post_read(bufs[b], 0, st.remote(fname), off, cfg.block_size)
                        st.wait(1)
                        _trace("read_end", job["id"], j)
                        fwd.put((b, job["slot"] + j * cfg.block_size, done if j == nblk - 1 else None))
                    done.wait()
                    _trace("fwd_done", job["id"], nblk)
                    with send_lock:
                        conn.sendall((json.dumps({"id": job["id"], "t": time.time()}) + "\n").encode())
                fwd.put(None)
                ft.join()
                st.close()
                pe.close()

            threads = [threading.Thread(target=worker, daemon=True) for _ in range(cfg.depth)]
            for t in threads:
                t.start()
            ready.wait()
            if failures:
                raise failures[0]
            with send_lock:
                conn.sendall(b'{"ready": true}\n')
            while True:
                try:
                    line = _recv_line(conn)
                except ConnectionError:
                    break
                msg = json.loads(line)
                if msg.get("bye"):
                    break
                jobs.put(msg)
            for _ in threads:
                jobs.put(None)
        except (ConnectionError, OSError, CalibrateError) as e:
            print(f"decode-agent: session ended: {e}", flush=True)
        finally:
            conn.close()
