"""The dual-path loader over loopback (no namespaces, no shaping): every request's bytes arrive in
the target buffer intact on both paths, and the raw records describe the run."""

import threading

import pytest

from calibrate.decode_agent import DecodeAgent
from calibrate.errors import CalibrateError
from calibrate.loader import LoaderConfig, format_result, run_prefill_side
from calibrate.measure import SampleLog, read_samples
from calibrate.storage import BlockLayout, ensure_block_files
from calibrate.transports.tcp import TcpServer


@pytest.fixture
def storage(tmp_path):
    layout = BlockLayout(96 * 1024 + 100, layers=5)  # not a multiple of the alignment or of the layers
    files = ensure_block_files(tmp_path / "blocks", layout, 8, 2)
    srv = TcpServer("127.0.0.1:0")
    srv.add_directory(tmp_path / "blocks")
    srv.start()
    yield layout, files, srv
    srv.close()


def test_config_from_model_and_layer_slices():
    cfg = LoaderConfig.build(model="ds27b", blocks_per_request=2, requests=4)
    assert cfg.layers == 30 and cfg.block_size == 30 * 64 * 656
    sl = cfg.layer_slices()
    assert len(sl) == 30 and sl[0][0] == 0 and sum(n for _, n in sl) == cfg.block_size
    assert cfg.assign() == ["pe", "de", "pe", "de"]
    with pytest.raises(CalibrateError):
        LoaderConfig.build(paths="sideways")


@pytest.mark.parametrize("paths", ["both", "pe", "de"])
def test_both_paths_deliver_the_blocks(storage, tmp_path, paths):
    layout, files, srv = storage
    agent = DecodeAgent("127.0.0.1:0", srv.address)
    threading.Thread(target=agent.serve, daemon=True).start()
    cfg = LoaderConfig(block_size=layout.full_block, layers=layout.layers, blocks_per_request=3, requests=6,
                       paths=paths, depth=2)
    content = {f.name: f.read_bytes() for f in files}
    seen, bad = [], []

    def verify(i, path, blocks, view):
        for j, (fname, off) in enumerate(blocks):
            got = bytes(view[j * cfg.block_size : (j + 1) * cfg.block_size])
            if got != content[fname][off : off + cfg.block_size]:
                bad.append((i, j))
        seen.append((i, path))

    raw = tmp_path / "l.jsonl"
    with SampleLog(raw) as log:
        res = run_prefill_side(cfg, srv.address, srv.address, agent.address, "127.0.0.1:0", None, log,
                               on_request=verify)
    assert not bad
    assert sorted(i for i, _ in seen) == list(range(6))
    assert {p for _, p in seen} == ({"pe", "de"} if paths == "both" else {paths})
    recs = read_samples([raw])
    loader = [r for r in recs if r["kind"] == "loader"]
    assert len(loader) == 6 and all(r["t_done"] > r["t_submit"] >= 0 for r in loader)
    (exp,) = [r for r in recs if r["kind"] == "experiment"]
    assert exp["config"]["blocks_per_request"] == 3
    assert res["bytes"] == 6 * 3 * cfg.block_size and res["aggregate_bw"] > 0
    assert "MB/s" in format_result(res)


def test_de_path_needs_a_decode_agent(storage, tmp_path):
    layout, _, srv = storage
    cfg = LoaderConfig(block_size=layout.full_block, layers=1, blocks_per_request=1, requests=2, paths="both")
    with pytest.raises(CalibrateError, match="--decode"):
        run_prefill_side(cfg, srv.address, None, None, "127.0.0.1:0", None, SampleLog(None))


def test_file_storage_endpoints(storage, tmp_path):
    """file:DIR reads block files with a storage reader, on both paths, without a storage server."""
    layout, files, srv = storage
    addr = f"file:{files[0].parent}?reader=odirect"
    agent = DecodeAgent("127.0.0.1:0", addr)
    threading.Thread(target=agent.serve, daemon=True).start()
    cfg = LoaderConfig(block_size=layout.full_block, layers=layout.layers, blocks_per_request=2, requests=4, depth=1)
    content = {f.name: f.read_bytes() for f in files}
    bad = []

    def verify(i, path, blocks, view):
        for j, (fname, off) in enumerate(blocks):
            if bytes(view[j * cfg.block_size : (j + 1) * cfg.block_size]) != content[fname][off : off + cfg.block_size]:
                bad.append((i, j, path))

    with SampleLog(None) as log:
        res = run_prefill_side(cfg, addr, None, agent.address, "127.0.0.1:0", None, log, on_request=verify)
    assert not bad and res["pe_bytes"] == res["de_bytes"] == 2 * 2 * cfg.block_size


def test_resume_continues_the_run_instead_of_starting_a_new_experiment(storage, tmp_path):
    """--resume skips the repetitions already complete in the raw file and runs only the rest; an
    interrupted repetition (no total) is run again from its start."""
    layout, _, srv = storage
    cfg = LoaderConfig(block_size=layout.full_block, layers=layout.layers, blocks_per_request=1, requests=2,
                       paths="pe", depth=1)
    raw = tmp_path / "l.jsonl"

    def experiments():
        return [r for r in read_samples([raw]) if r["kind"] == "experiment"]

    with SampleLog(raw) as log:
        run_prefill_side(cfg, srv.address, None, None, "127.0.0.1:0", None, log, repeat=1)
    with SampleLog(raw, resume=True) as log:
        res = run_prefill_side(cfg, srv.address, None, None, "127.0.0.1:0", None, log, repeat=2)
    assert [e["rep"] for e in experiments()] == [0, 1] and len(res["runs"]) == 2
    with SampleLog(raw, resume=True) as log:  # everything done: nothing new
        run_prefill_side(cfg, srv.address, None, None, "127.0.0.1:0", None, log, repeat=2)
    assert len(experiments()) == 2
    # an interrupted repetition 2 (experiment record, no total) is measured again
    interrupted = {**experiments()[-1], "experiment": "loader-interrupted", "rep": 2}
    with SampleLog(raw, resume=True) as log:
        log.write(interrupted)
    with SampleLog(raw, resume=True) as log:
        run_prefill_side(cfg, srv.address, None, None, "127.0.0.1:0", None, log, repeat=3)
    reps = [e["rep"] for e in experiments()]
    assert reps == [0, 1, 2, 2] and len([r for r in read_samples([raw]) if r["kind"] == "loader_total"]) == 3
    # a different configuration in the same file is a new experiment
    with SampleLog(raw, resume=True) as log:
        run_prefill_side(LoaderConfig(**{**cfg.__dict__, "depth": 2}), srv.address, None, None, "127.0.0.1:0",
                         None, log, repeat=1)
    assert len(experiments()) == 5
