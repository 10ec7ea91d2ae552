"""`dpsim report`: one self-contained HTML (and Markdown) from compare, sweep and capacity folders."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dpsim.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")
CONTEXT = "ds27b 1P1D, H800 preset"  # model, layout and profile of the quickstart


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    runner = CliRunner()
    compare = runner.invoke(main, ["compare", QUICK, "--set", "workload.agents=6", "--set", "workload.max_turns=3",
                                   "--policies", "basic,dualpath", "--seeds", "2", "--no-progress",
                                   "--out", str(base / "compare")])
    assert compare.exit_code == 0, compare.output
    (base / "s.yaml").write_text(f"name: s\nbase: {QUICK}\nset: [workload.agents=6, workload.max_turns=3]\n"
                                 "grid: {policy.system: [basic, dualpath]}\n")
    sweep = runner.invoke(main, ["sweep", str(base / "s.yaml"), "-j", "1", "--no-progress", "--out",
                                 str(base / "sweep")])
    assert sweep.exit_code == 0, sweep.output
    return base


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", text)]


def test_report_of_a_compare_and_a_sweep_side_by_side(folders, tmp_path):
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(folders / "compare"), str(folders / "sweep"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    images = _images(text)
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", text)
    # compare: TTFT, TPOT, utilisation, JCT; sweep: JCT per point.
    assert len(images) == len(captions) == 5 and all(png.startswith(b"\x89PNG") for png in images)
    assert all(CONTEXT in c for c in captions)
    assert "src='http" not in text and "<script" not in text  # self-contained
    assert "speed-up over basic, paired by seed: dualpath" in text and "95 % intervals over seeds" in text
    assert "2 of 2 points ran; the shortest JCT" in text
    assert "caveats" in text and "Hardware: no calibration profile" in text
    md = out.with_suffix(".md").read_text()
    figures = re.findall(r"\]\((r_figures/figure-\d+\.png)\)", md)
    assert len(figures) == 5 and all((tmp_path / f).is_file() for f in figures)


def test_report_of_a_run_names_the_binding_resource(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["run", QUICK, "--set", "workload.agents=6", "--set", "workload.max_turns=3",
                                "--set", "hardware.storage_nic.bandwidth=10Gbps", "--no-plots",
                                "--out", str(tmp_path / "run")]).exit_code == 0
    result = runner.invoke(main, ["report", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run" / "report.html").read_text()
    assert "the resource closest to its ceiling is the storage NIC" in text  # a 10 Gbps storage NIC binds
    assert len(_images(text)) == 3


def test_report_of_a_capacity_folder(tmp_path):
    runner = CliRunner()
    cap = runner.invoke(main, ["capacity", QUICK, "--set", "workload.max_turns=8", "--set",
                               "hardware.storage_nic.bandwidth=25Gbps", "--systems", "basic", "--window", "10s",
                               "--aps-lo", "2", "--aps-hi", "8", "--tolerance", "6", "--quiet",
                               "--out", str(tmp_path / "cap")])
    assert cap.exit_code == 0, cap.output
    result = runner.invoke(main, ["report", str(tmp_path / "cap")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "cap" / "report.html").read_text()
    assert "the cluster sustains: basic" in text and "binding: storage NIC" in text
    assert len(_images(text)) == 2 and "stops at the SLO break" in text


def test_report_of_a_folder_that_is_not_dpsim_output(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "not a dpsim run, compare, sweep or capacity folder" in result.output


@pytest.mark.slow
def test_report_renders_in_headless_chromium(folders, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    out = tmp_path / "r.html"
    assert CliRunner().invoke(main, ["report", str(folders / "compare"), str(folders / "sweep"),
                                     "--out", str(out)]).exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,7000",
                    "--hide-scrollbars", out.as_uri()], check=True, capture_output=True, timeout=120)
    import matplotlib.image as mpimg
    pixels = mpimg.imread(shot)[..., :3]
    # Figures are large non-white areas: count 100-pixel bands of the page with many coloured pixels.
    coloured = (np.abs(pixels - 1.0).sum(axis=2) > 0.3).mean(axis=1)
    bands = [coloured[i:i + 100].mean() for i in range(0, len(coloured), 100)]
    assert sum(b > 0.02 for b in bands) >= 10, bands
    shutil.copy(shot, ROOT / ".pytest_cache" / "report-screenshot.png") if (ROOT / ".pytest_cache").is_dir() else None


def test_engine_occupancy_is_the_union_of_prompt_intervals_per_bin():
    from dpsim.viz.report_plots import _covered
    starts, ends = np.array([0.25, 0.0, 3.0]), np.array([1.5, 0.5, 3.5])
    assert _covered(starts, ends, np.array([0.0, 1.0, 2.0, 3.0, 4.0])) == pytest.approx([1.0, 0.5, 0.0, 0.5])
