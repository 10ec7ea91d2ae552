"""The GPU measurement code path. Runs on CPU when torch is installed (labelled not representative);
skips with a reason otherwise. Real GPU figures need a CUDA device."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_command_on_cpu_writes_a_labelled_profile(tmp_path):
    pytest.importorskip("torch", reason="torch (extra 'gpu') is not installed")
    raw, prof = tmp_path / "g.jsonl", tmp_path / "g.yaml"
    run = lambda *a: subprocess.run([sys.executable, "-m", "calibrate.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=ROOT, timeout=120)
    p = run("gpu", "--device", "cpu", "--sizes", "64KiB..4MiB/1", "--reps", "3", "--model", "ds27b", "--raw", str(raw))
    assert p.returncode == 0, p.stderr
    assert "h2d" in p.stdout and "d2h" in p.stdout
    p = run("fit", str(raw), "-o", str(prof), "--boot", "20")
    assert p.returncode == 0, p.stderr
    data = yaml.safe_load(prof.read_text())
    assert "copy_submit_overhead" in data["hardware"]["gpu"] and data["calibration"]["links"]["h2d"]["bandwidth_Bps"] > 0
    assert any("NOT representative" in n for n in data["calibration"]["notes"])
    assert data["calibration"]["kernels"]["prefill_gemm"]["not_representative"] is True


def test_cuda_requested_without_a_device_is_one_line():
    torch = pytest.importorskip("torch", reason="torch (extra 'gpu') is not installed")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    p = subprocess.run([sys.executable, "-m", "calibrate.cli", "gpu", "--device", "cuda"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 3
    assert len(p.stderr.strip().splitlines()) == 1 and "no CUDA device" in p.stderr
