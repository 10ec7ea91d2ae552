"""Without pyverbs, torch, a device or the 3FS binding, each command fails with one clear line and
a non-zero status; pyverbs API generations and the no-device error are handled (fake modules)."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from calibrate.errors import Unavailable

ROOT = Path(__file__).resolve().parents[2]


def run_cli(args, hide=()):
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in hide) + \
           "from calibrate.cli import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("args,hide,word", [
    (["transport", "127.0.0.1:9", "--transport", "rdma"], ("pyverbs",), "pyverbs"),
    (["serve", "--transport", "rdma", "--listen", "127.0.0.1:0"], ("pyverbs",), "pyverbs"),
    (["gpu"], ("torch",), "torch"),
    (["gpu", "--device", "cpu"], ("torch",), "torch"),
    (["storage", "{tmp}", "--reader", "usrbio", "--blocks", "2", "--block-size", "64KiB"], ("hf3fs_fuse",), "hf3fs"),
])
def test_missing_backend_is_one_line(args, hide, word, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = run_cli(args, hide)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("dpsim-calibrate: ") and word in lines[0]
    assert "Traceback" not in p.stderr


def test_rest_of_harness_works_without_backends(tmp_path):
    p = run_cli(["storage", str(tmp_path), "--reader", "posix", "--blocks", "4", "--block-size", "64KiB",
                 "--depths", "1,2", "--reps", "2", "--count", "4", "--raw", str(tmp_path / "s.jsonl")],
                hide=("pyverbs", "torch", "hf3fs_fuse"))
    assert p.returncode == 0, p.stderr
    assert "BW avg" in p.stdout


def _fake_pyverbs(monkeypatch, new_api: bool, devices):
    pkg = types.ModuleType("pyverbs")
    pkg.__path__ = []
    err = types.ModuleType("pyverbs.pyverbs_error")

    class PyverbsRDMAError(Exception):
        pass

    err.PyverbsRDMAError = PyverbsRDMAError
    dev = types.ModuleType("pyverbs.device")

    def get_device_list():
        if devices is None:
            raise PyverbsRDMAError("Failed to get devices list")
        return [types.SimpleNamespace(name=d.encode()) for d in devices]

    dev.get_device_list = get_device_list
    mods = {"pyverbs": pkg, "pyverbs.pyverbs_error": err, "pyverbs.device": dev}
    for m in ("pd", "mr", "cq", "qp", "wr", "addr"):
        mods[f"pyverbs.{m}"] = types.ModuleType(f"pyverbs.{m}")
    if new_api:
        en = types.ModuleType("pyverbs.libibverbs_enums")
        en.ibv_access_flags = types.SimpleNamespace(IBV_ACCESS_LOCAL_WRITE=1, IBV_ACCESS_REMOTE_WRITE=2,
                                                    IBV_ACCESS_REMOTE_READ=4)
        en.ibv_wr_opcode = types.SimpleNamespace(IBV_WR_RDMA_WRITE=0, IBV_WR_RDMA_READ=4)
        en.ibv_send_flags = types.SimpleNamespace(IBV_SEND_SIGNALED=2)
        en.ibv_qp_type = types.SimpleNamespace(IBV_QPT_RC=2)
        en.ibv_wc_status = types.SimpleNamespace(IBV_WC_SUCCESS=0)
        mods["pyverbs.libibverbs_enums"] = en
        mods["pyverbs.enums"] = None
    else:
        old = types.ModuleType("pyverbs.enums")
        old.__dict__.update(IBV_ACCESS_LOCAL_WRITE=1, IBV_ACCESS_REMOTE_WRITE=2, IBV_ACCESS_REMOTE_READ=4,
                            IBV_WR_RDMA_WRITE=0, IBV_WR_RDMA_READ=4, IBV_SEND_SIGNALED=2, IBV_QPT_RC=2,
                            IBV_WC_SUCCESS=0)
        mods["pyverbs.enums"] = old
        mods["pyverbs.libibverbs_enums"] = None
    for k, v in mods.items():
        monkeypatch.setitem(sys.modules, k, v)


@pytest.mark.parametrize("new_api", [True, False])
def test_enum_compat_both_generations(monkeypatch, new_api):
    from calibrate.transports import rdma

    _fake_pyverbs(monkeypatch, new_api, ["mlx5_0"])
    e = rdma.enums()
    assert (e.WR_RDMA_READ, e.ACCESS_REMOTE_READ, e.QPT_RC) == (4, 4, 2)
    assert ("59" in e.api) == new_api
    assert rdma.probe() == ["mlx5_0"]


def test_no_device_raises_one_line(monkeypatch):
    from calibrate.transports import rdma

    _fake_pyverbs(monkeypatch, True, None)  # get_device_list raises, as it does with no uverbs
    with pytest.raises(Unavailable, match="^no RDMA device: Failed to get devices list$"):
        rdma.probe()
    _fake_pyverbs(monkeypatch, True, [])
    with pytest.raises(Unavailable, match="empty"):
        rdma.probe()
    _fake_pyverbs(monkeypatch, True, ["mlx5_0"])
    with pytest.raises(Unavailable, match="mlx5_3"):
        rdma.probe("mlx5_3")


def test_exchange_message_roundtrip():
    from calibrate.transports.rdma import decode_exchange

    line = b'{"lid": 3, "qpn": 77, "psn": 5, "mtu": 5, "gid": null, "regions": {"mem": [4096, 99, 1024]}}\n'
    info, regions = decode_exchange(line)
    assert info["qpn"] == 77 and "regions" not in info
    assert regions["mem"].addr == 4096 and regions["mem"].rkey == 99 and regions["mem"].length == 1024
