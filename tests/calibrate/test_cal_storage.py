"""Storage readers: content correctness, O_DIRECT alignment, queue depth, the USRBIO code path
against a mock with the hf3fs_fuse.io API, and the sweep's records."""

import os
import sys
from types import SimpleNamespace

import pytest

from calibrate.errors import CalibrateError, Unavailable
from calibrate.measure import SampleLog, read_samples
from calibrate.storage import BlockLayout, StorageSweep, ensure_block_files, import_usrbio, open_reader


class MockUsrbio:
    """Plain files behind the hf3fs_fuse.io API (shared-memory iovec + io ring), like SGLang's
    Hf3fsMockClient: exercises the USRBIO reader's code path without 3FS."""

    __version__ = "mock"

    def __init__(self):
        self.registered = set()

    def extract_mount_point(self, path):
        return os.path.dirname(path)

    def register_fd(self, fd):
        self.registered.add(fd)

    def deregister_fd(self, fd):
        self.registered.discard(fd)

    def make_iovec(self, shm, mount, block_size=0, numa=-1):
        return shm.buf

    def make_ioring(self, mount, entries, for_read=True, io_depth=0, priority=None, timeout=None, numa=-1, flags=0):
        mock = self

        class Ring:
            def __init__(self):
                self.queue = []

            def prepare(self, view, read, fd, off, userdata=None):
                assert read and fd in mock.registered
                assert len(self.queue) < entries
                self.queue.append((view, fd, off, userdata))

            def submit(self):
                return self

            def wait(self, min_results=1, max_results=None, timeout=None):
                out = [SimpleNamespace(result=os.preadv(fd, [view], off), userdata=u) for view, fd, off, u in self.queue]
                self.queue = []
                return out

        return Ring()


@pytest.fixture
def files(tmp_path):
    layout = BlockLayout(64 * 1024, layers=4)
    return layout, ensure_block_files(tmp_path, layout, 16, 2)


def test_layout_for_models():
    ds = BlockLayout.for_model("ds27b")
    assert ds.full_block == 30 * 64 * 656 and ds.layers == 30
    assert BlockLayout.for_model("qwen32b").full_block == 64 * 64 * 4096  # 16.8 MB per Full Block
    assert ds.aligned_block % 4096 == 0 and ds.aligned_block >= ds.full_block
    with pytest.raises(CalibrateError):
        BlockLayout.for_model("gpt-9")


@pytest.mark.parametrize("name", ["posix", "odirect"])
def test_reader_returns_file_content(files, name):
    layout, paths = files
    rd = open_reader(name, paths)
    buf = rd.buffer(layout.full_block)
    rd.read_into(1, 3 * layout.aligned_block, layout.full_block, buf)
    with open(paths[1], "rb") as fh:
        fh.seek(3 * layout.aligned_block)
        assert bytes(memoryview(buf)[: layout.full_block]) == fh.read(layout.full_block)
    reads = [(i % 2, (i % 16) * layout.aligned_block, layout.full_block) for i in range(24)]
    assert rd.read_many(reads, 4) > 0
    rd.close()


def test_odirect_rejects_unaligned(files):
    layout, paths = files
    rd = open_reader("odirect", paths)
    with pytest.raises(CalibrateError, match="aligned"):
        rd.read_into(0, 100, 4096, rd.buffer(8192))
    rd.close()


def test_usrbio_path_with_mock(files):
    layout, paths = files
    mock = MockUsrbio()
    rd = open_reader("usrbio", paths, module=mock, entries=8, shm_size=1 << 20)
    buf = bytearray(layout.full_block)
    rd.read_into(0, 2 * layout.aligned_block, layout.full_block, buf)
    with open(paths[0], "rb") as fh:
        fh.seek(2 * layout.aligned_block)
        assert bytes(buf) == fh.read(layout.full_block)
    assert rd.read_many([(0, 0, layout.full_block)] * 20, 8) > 0
    rd.close()
    assert not mock.registered


def test_usrbio_missing_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "hf3fs_fuse", None)
    with pytest.raises(Unavailable) as e:
        import_usrbio()
    assert "\n" not in str(e.value) and "hf3fs_fuse.io" in str(e.value)


def test_storage_sweep_records(files, tmp_path):
    layout, paths = files
    rd = open_reader("odirect", paths)
    with SampleLog(tmp_path / "s.jsonl") as log:
        StorageSweep(rd, layout, (4096, 16384, layout.full_block), depths=(1, 2, 4), reps=3, count=8).run(log)
    rd.close()
    recs = read_samples([tmp_path / "s.jsonl"])
    lat = [r for r in recs if r.get("mode") != "depth"]
    dep = [r for r in recs if r.get("mode") == "depth"]
    assert len(lat) == 9 and {r["size"] for r in lat} == {4096, 16384, layout.full_block}
    assert {r["depth"] for r in dep} == {1, 2, 4}
    assert all(r["bytes"] == r["size"] * r["count"] for r in dep)
