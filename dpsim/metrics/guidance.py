"""What a planner should know about a run before trusting it: the hardware profile in use and the
library versions (written to run.json and said by `dpsim run`)."""

from __future__ import annotations

import platform
from importlib import metadata

from dpsim import __version__

# The shipped H800 preset's GPU efficiencies (scenarios/presets/h800-node.yaml: DeepGEMM, FlashMLA).
PRESET_GEMM_EFFICIENCY = 0.68


def hardware_profile(scenario) -> str:
    """One sentence: which hardware numbers the scenario runs on and what they are calibrated to."""
    cal = scenario.calibration or {}
    gpu = scenario.hardware.gpu
    effs = (f"GPU GEMM/attention/HBM efficiency {gpu.gemm_efficiency:g}/{gpu.attention_efficiency:g}/"
            f"{gpu.hbm_efficiency:g}, storage read efficiency {scenario.hardware.storage.read_efficiency:g}")
    if isinstance(cal.get("source"), str) and "testbed_fit" in cal["source"]:
        return (f"the DualPath paper testbed profile, fitted to the paper's published absolute JCTs only "
                f"({cal['source']}); {effs}")
    if cal.get("tool") == "dpsim-calibrate":
        prov = cal.get("provenance") or {}
        date = prov.get("date")
        date = date[0] if isinstance(date, list) and date else date
        return (f"a dpsim-calibrate profile measured on host {prov.get('host', '?')} ({date or 'date unknown'}, "
                f"transport {prov.get('transport', '?')}); {effs}")
    if cal:
        return f"a profile with calibration notes {sorted(cal)[:4]}; {effs}"
    near_peak = abs(gpu.gemm_efficiency - PRESET_GEMM_EFFICIENCY) < 1e-9
    return ("no calibration profile: " + ("the H800 preset's vendor peaks and public kernel benchmarks "
                                          "(near-peak GPUs; the paper testbed profile, --profile "
                                          "scenarios/paper/testbed-v5.yaml, fits 0.13-0.65 of these "
                                          "efficiencies by model)"
                                          if near_peak else "the scenario's own hardware numbers") + f"; {effs}")


def library_versions() -> dict[str, str | None]:
    """Versions of dpsim and the libraries its results depend on (for run.json)."""
    versions: dict[str, str | None] = {"dpsim": __version__, "python": platform.python_version()}
    for name in ("numpy", "pandas", "simpy", "pyarrow", "pydantic"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def profile_label(scenario) -> str:
    """A short name of the hardware profile, for figure titles."""
    cal = scenario.calibration or {}
    if isinstance(cal.get("source"), str) and "testbed_fit" in cal["source"]:
        return "paper testbed profile"
    if cal.get("tool") == "dpsim-calibrate":
        return f"dpsim-calibrate profile ({(cal.get('provenance') or {}).get('host', '?')})"
    if cal:
        return "calibrated profile"
    if abs(scenario.hardware.gpu.gemm_efficiency - PRESET_GEMM_EFFICIENCY) < 1e-9:
        return "H800 preset"
    return "custom hardware"
