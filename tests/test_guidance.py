"""What a planner is told: hardware profile, library versions, short-horizon warning, online headline,
a backend-neutral plotting module and one version number."""

import importlib
import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

import dpsim
from dpsim import api
from dpsim.cli.app import main
from dpsim.planning import capacity

QUICK = "scenarios/quickstart.yaml"
TINY = ["--set", "workload.agents=4", "--set", "workload.max_turns=2", "--no-plots"]


def test_run_names_the_hardware_profile_and_records_versions(tmp_path):
    preset = CliRunner().invoke(main, ["run", QUICK, *TINY, "--out", str(tmp_path / "a")])
    assert preset.exit_code == 0 and "hardware: no calibration profile: the H800 preset" in preset.output
    fitted = CliRunner().invoke(main, ["run", "scenarios/paper/ds27b-1p1d.yaml", "--profile",
                                       "scenarios/paper/testbed.yaml", *TINY, "--out", str(tmp_path / "b")])
    assert fitted.exit_code == 0, fitted.output
    assert "hardware: the DualPath paper testbed profile, fitted to the paper's published absolute JCTs" \
        in fitted.output and "efficiency 0.088332/" in fitted.output
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert info["hardware_profile"].startswith("the DualPath paper testbed profile")
    for name in ("numpy", "pandas", "simpy"):
        assert info["versions"][name] == metadata.version(name)
    assert info["versions"]["dpsim"] == dpsim.__version__


def test_capacity_warns_when_the_horizon_is_shorter_than_a_lifetime():
    sc = api.load_scenario(QUICK, ["workload.max_turns=8", "hardware.storage_nic.bandwidth=25Gbps",
                                   "policy.system=basic"])
    short = capacity.find_capacity(sc, window_s=10.0, aps_lo=2.0, aps_hi=16.0, tolerance=14.0, horizon_s=12.0)
    assert short.warnings and "shorter than one trajectory lifetime" in short.warnings[0]
    long = capacity.find_capacity(sc, window_s=10.0, aps_lo=2.0, aps_hi=16.0, tolerance=14.0, horizon_s=40.0)
    assert long.warnings == []
    assert short.aps >= long.aps  # the short horizon is the optimistic one


def test_capacity_names_the_hardware_profile():
    result = CliRunner().invoke(main, ["capacity", QUICK, "--set", "workload.max_turns=4", "--window", "10s",
                                       "--slo-ttft", "2s", "--aps-lo", "2", "--aps-hi", "8", "--tolerance", "6",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "hardware: no calibration profile: the H800 preset" in result.output


def test_online_compare_headlines_slo_attainment_not_jct():
    online = CliRunner().invoke(main, ["compare", QUICK, "--set", "workload.agents=12", "--set",
                                       "workload.max_turns=3", "--set", "workload.mode=online", "--set",
                                       "workload.aps=4", "--policies", "basic,dualpath", "--no-progress"])
    assert online.exit_code == 0, online.output
    assert "SLO attainment and latency are the answer" in online.output
    assert "dualpath vs basic: SLO attainment" in online.output and "speed-up" not in online.output


@pytest.mark.parametrize("module", ["dpsim.viz.plots", "dpsim.viz.report_plots", "dpsim.reproduce.figures", "dpsim.viz.whatif_figures"])
def test_importing_plots_keeps_the_callers_matplotlib_backend(module):
    code = f"import matplotlib; matplotlib.use('pdf'); import {module}; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "pdf"


def test_the_version_has_one_source():
    project = tomllib.loads(Path("pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, name = attr.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) == dpsim.__version__
