"""Loading a scenario file: includes, profiles, `by_model` entries and `--set` overrides merged with
the origin of every value, then validated (`dpsim.scenario.config`) and checked for plausibility
(`dpsim.scenario.plausibility`). Errors are one located line (`ScenarioError`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpsim.scenario.config import Scenario, validate_scenario
from dpsim.scenario.files import ScenarioError, apply_overrides, deep_merge, load_yaml_with_includes
from dpsim.scenario.models import MODELS
from dpsim.scenario.plausibility import plausibility_warnings


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                  profiles: list[str | Path] | tuple[str | Path, ...] = ()) -> Scenario:
    """Load, merge, override and validate a scenario file. Raises ScenarioError with one line.

    Precedence, lowest first: the scenario's includes, the scenario, each of `profiles` (e.g. a
    calibration or testbed profile), the `by_model` entry for the scenario's model, `overrides`."""
    origins: dict[tuple, str] = {}
    data = load_yaml_with_includes(Path(path), origins)
    for profile in profiles:
        deep_merge(data, load_yaml_with_includes(Path(profile), origins))
    by_model = data.pop("by_model", None)
    if by_model is not None:
        _apply_by_model(data, by_model, list(overrides), origins, str(path))
    apply_overrides(data, list(overrides), origins)
    scenario = validate_scenario(data, origins, default_source=str(path))
    scenario.source_path = str(path)
    scenario._warnings = [f"{origins.get(loc, str(path))}: {'.'.join(loc)} = {_written(data, loc)!r}: {message}"
                          for loc, message in plausibility_warnings(scenario, data)]
    return scenario


def _written(data: dict, loc: tuple[str, ...]) -> Any:
    for part in loc:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _apply_by_model(data: dict, by_model, overrides: list[str], origins: dict[tuple, str], path: str) -> None:
    """`by_model: {MODEL: {section: ...}}` (e.g. a testbed profile with per-model GPU efficiencies):
    merge the entry of the scenario's model over the files, below any --set."""
    source = origins.get(("by_model",), path)
    if not isinstance(by_model, dict):
        raise ScenarioError(f"{source}: by_model: expected a mapping of model name -> overrides, "
                            f"got {type(by_model).__name__}")
    for name, entry in by_model.items():
        where = next((v for k, v in origins.items() if k[:2] == ("by_model", name)), path)
        if name not in MODELS:
            raise ScenarioError(f"{where}: by_model.{name}: unknown model; expected one of: {', '.join(MODELS)}")
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: by_model.{name}: expected a mapping of sections, got {entry!r}")
    probe = {"model": dict(data.get("model") or {})}
    apply_overrides(probe, [o for o in overrides if o.split("=", 1)[0].strip() == "model.name"], {})
    name = (probe.get("model") or {}).get("name")
    entry = by_model.get(name)
    if entry:
        for key, source in list(origins.items()):
            if key[:2] == ("by_model", name):
                origins[key[2:]] = source  # errors in the merged values name the profile that set them
        deep_merge(data, entry)
