"""TCP transport over loopback: data correctness, depth, completions in order, errors, delay."""

import time

import pytest

from calibrate.errors import CalibrateError
from calibrate.measure import SampleLog, read_samples
from calibrate.sweeps import TransportSweep, contend
from calibrate.transports import get_transport, transfer_batch
from calibrate.transports.tcp import TcpServer


@pytest.fixture
def server():
    mem = bytearray(i % 251 for i in range(4 << 20))
    srv = TcpServer("127.0.0.1:0")
    srv.add_buffer("mem", mem)
    srv.start()
    yield srv, mem
    srv.close()


def test_read_write_roundtrip(server):
    srv, mem = server
    tr = get_transport("tcp")
    with tr.connect(srv.address) as ep:
        local = tr.register(bytearray(1 << 20))
        r = ep.remote("mem")
        ep.post_read(local, 10, r, 12345, 100_000)
        (c,) = ep.wait(1)
        assert c.op == "read" and c.length == 100_000 and c.status == 0
        assert bytes(local.buf[10:100_010]) == bytes(mem[12345:112_345])
        local.buf[:5] = b"hello"
        ep.post_write(local, 0, r, 7, 5)
        ep.wait(1)
        assert mem[7:12] == b"hello"


def test_outstanding_requests_complete_in_order(server):
    srv, mem = server
    tr = get_transport("tcp")
    with tr.connect(srv.address) as ep:
        local = tr.register(bytearray(8 * 4096))
        r = ep.remote("mem")
        ids = [ep.post_read(local, i * 4096, r, i * 4096, 4096) for i in range(8)]
        assert ep.outstanding == 8
        got = ep.wait(8)
        assert [c.wr_id for c in got] == ids
        assert bytes(local.buf) == bytes(mem[: 8 * 4096])
        # a write posted while reads are outstanding must not deadlock
        for _ in range(4):
            ep.post_read(local, 0, r, 0, 4096)
        ep.post_write(local, 0, r, 0, 4096)
        assert len(ep.wait(5)) == 5
        with pytest.raises(CalibrateError):
            ep.wait(1)


def test_bad_range_is_reported(server):
    srv, _ = server
    tr = get_transport("tcp")
    with tr.connect(srv.address) as ep:
        local = tr.register(bytearray(4096))
        ep.post_read(local, 0, ep.remote("mem"), (4 << 20) - 10, 4096)
        with pytest.raises(CalibrateError, match="rejected"):
            ep.wait(1)
        with pytest.raises(KeyError):
            ep.remote("nope")


def test_transfer_batch_and_poll(server):
    srv, _ = server
    tr = get_transport("tcp")
    with tr.connect(srv.address) as ep:
        local = tr.register(bytearray(4 << 20))
        before = srv.requests
        transfer_batch(ep, "read", local, ep.remote("mem"), 64 * 1024, 40, depth=4)
        assert srv.requests - before == 40
        ep.post_read(local, 0, ep.remote("mem"), 0, 1024)
        deadline = time.time() + 5
        got = []
        while not got and time.time() < deadline:
            got = ep.poll()
        assert len(got) == 1


def test_injected_delay_is_seen():
    srv = TcpServer("127.0.0.1:0", delay_s=0.02)
    srv.add_buffer("mem", bytearray(4096))
    srv.start()
    try:
        tr = get_transport("tcp")
        with tr.connect(srv.address) as ep:
            local = tr.register(bytearray(4096))
            t0 = time.perf_counter()
            ep.post_read(local, 0, ep.remote("mem"), 0, 16)
            ep.wait(1)
            assert time.perf_counter() - t0 >= 0.02
            t0 = time.perf_counter()  # writes too: the compute link is measured with WRITEs
            ep.post_write(local, 0, ep.remote("mem"), 0, 16)
            ep.wait(1)
            assert time.perf_counter() - t0 >= 0.02
    finally:
        srv.close()


def test_sweep_writes_samples(server, tmp_path):
    srv, _ = server
    raw = tmp_path / "t.jsonl"
    with SampleLog(raw) as log:
        TransportSweep(srv.address, sizes=(4096, 65536), reps=3, depths=(1, 4), count=8, warmup=1).run(log)
    recs = read_samples([raw])
    assert len(recs) == 2 * 3 * 2
    assert {r["depth"] for r in recs} == {1, 4}
    assert all(r["elapsed_s"] > 0 and r["bytes"] == r["size"] * r["count"] for r in recs)


def test_resume_keys_on_the_experiment_not_the_servers_port(server, tmp_path):
    """A server restarted on another port: --resume continues the plan instead of starting over,
    and a different experiment (another link) in the same file is not mistaken for it."""
    srv, mem = server
    raw = tmp_path / "t.jsonl"
    with SampleLog(raw) as log:
        TransportSweep(srv.address, sizes=(4096, 65536), reps=2, warmup=0, link="storage_pe").run(log)
    other = TcpServer("127.0.0.1:0")
    other.add_buffer("mem", mem)
    other.start()
    try:
        assert other.address != srv.address
        with SampleLog(raw, resume=True) as log:
            again = TransportSweep(other.address, sizes=(4096, 65536, 262144), reps=2, warmup=0,
                                   link="storage_pe").run(log)
            assert sorted(r["size"] for r in again) == [262144, 262144]  # only what was not measured
            fresh = TransportSweep(other.address, sizes=(4096,), reps=2, warmup=0, link="compute").run(log)
            assert len(fresh) == 2
    finally:
        other.close()


def test_contend_records_flows(server, tmp_path):
    srv, _ = server
    with SampleLog(tmp_path / "c.jsonl") as log:
        recs = contend(srv.address, [(2 << 20, None, 0.0), (1 << 20, 7, 0.0)], log, chunk=256 * 1024)
    assert [r["bytes"] for r in recs] == [2 << 20, 1 << 20]
    assert all(r["t_end"] > r["t_start"] >= 0 for r in recs)
    assert recs[1]["priority"] == 7


def test_unknown_transport():
    with pytest.raises(CalibrateError):
        get_transport("carrier-pigeon")
