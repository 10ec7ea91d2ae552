"""Experiment files: one YAML per paper experiment, expanded into sweep points.

An experiment names a base scenario, the systems compared (each a set of `--set` overrides), a grid
(cartesian product), a zip (lists walked together) or explicit points, fixed overrides (`set`), task
options, and a `quick:` block saying what `--quick` replaces. Keys under `quick` replace the full-run
keys of the same name, except `set` and `options`, which are merged on top. Every error is one line
naming the file, the field, the value and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dpsim.planning.sweep import expand
from dpsim.scenario.config import ScenarioError, read_yaml
from dpsim.scenario.loading import load_scenario

# Columns every row of points.csv has (the list); tasks add their own after these.
POINT_COLUMNS = ["experiment", "model", "layout", "mal", "agents", "aps", "scale", "policy", "jct_s",
                 "ttft_s_p50", "ttft_s_p90", "ttst_s_p50", "tpot_s_p50", "snic_balance", "capacity_aps"]


def quick_mask(points):
    """Boolean Series: the rows of a points table that ran in quick mode (the `quick` column reads back
    from CSV as bool or as text; a table without it is all full size)."""
    import pandas as pd

    if "quick" not in points:
        return pd.Series(False, index=points.index)
    return points.quick.astype(str).str.lower().eq("true")


class ExperimentError(Exception):
    """A bad experiment file; the message is one readable line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointSpec(_Strict):
    label: dict[str, Any] = {}
    set: dict[str, Any] = {}


class QuickSpec(_Strict):
    note: str = Field(description="what quick mode changes, in words (printed in the docs)")
    systems: list[str] | dict[str, dict[str, Any]] | None = None
    grid: dict[str, list[Any]] | None = None
    zip: dict[str, list[Any]] | None = None
    points: list[PointSpec] | None = None
    set: dict[str, Any] = {}
    options: dict[str, Any] = {}


class Experiment(_Strict):
    name: str
    title: str
    paper: str = ""  # the figure or table of the paper it reproduces
    task: Literal["run", "capacity", "cache_compute", "pd_bound", "steady"] = "run"
    base: str | None = None  # scenario file, relative to the experiment file
    figure: Literal["bars", "curves", "capacity", "ladder", "balance", "scale", "table", "pd_bound", "breakdown", "none"] = "bars"
    systems: list[str] | dict[str, dict[str, Any]] = {"-": {}}
    grid: dict[str, list[Any]] = {}
    zip: dict[str, list[Any]] = {}
    points: list[PointSpec] = []
    set: dict[str, Any] = {}
    options: dict[str, Any] = {}
    columns: dict[str, str] = {}  # points.csv column -> override key it is read from (e.g. scale)
    profile: str | None = None  # calibration profile over the base scenario (relative to this file)
    quick: QuickSpec
    path: str = Field("", exclude=True)

    def system_overrides(self, quick: bool) -> dict[str, dict[str, Any]]:
        systems = self.quick.systems if quick and self.quick.systems is not None else self.systems
        if isinstance(systems, list):  # shorthand: names of policy.system
            return {name: {"policy.system": name} for name in systems}
        return systems

    def resolved(self, quick: bool) -> tuple[dict, dict, list[PointSpec], dict, dict]:
        """(grid, zip, points, set, options) after the quick block is applied."""
        q = self.quick if quick else None
        grid = q.grid if q and q.grid is not None else self.grid
        zipped = q.zip if q and q.zip is not None else self.zip
        points = q.points if q and q.points is not None else self.points
        fixed = {**self.set, **(q.set if q else {})}
        options = {**self.options, **(q.options if q else {})}
        return grid, zipped, points, fixed, options

    def base_path(self) -> Path | None:
        return (Path(self.path).parent / self.base) if self.base else None


def read_yaml_mapping(path: Path) -> dict:
    """The YAML mapping in `path` (an existing file); bad YAML or another top-level type is one
    located ExperimentError."""
    data = read_yaml(path, ExperimentError)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: file not found")
    data = read_yaml_mapping(path)
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()  # an unknown key first: a misspelt key also shows up as a missing one
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(k for k in Experiment.model_fields if k != "path")
            raise ExperimentError(f"{path}: {field}: unknown key; expected one of: {allowed}") from None
        if err["type"] == "missing":
            raise ExperimentError(f"{path}: {field}: required field is missing") from None
        raise ExperimentError(f"{path}: {field} = {err.get('input')!r}: {err['msg']}") from None
    exp.path = str(path)
    if exp.name != path.stem:
        raise ExperimentError(f"{path}: name = {exp.name!r}: expected the file name without .yaml ({path.stem!r})")
    if exp.task in ("run", "capacity", "pd_bound", "steady") and not exp.base:
        raise ExperimentError(f"{path}: base: required for task {exp.task!r} (a scenario file)")
    if exp.task == "steady":
        for where, opts in (("options", exp.options), ("quick.options", {**exp.options, **exp.quick.options})):
            value = opts.get("horizon_s")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ExperimentError(f"{path}: {where}.horizon_s = {value!r}: task steady needs a positive "
                                      f"horizon in seconds (arrivals keep coming until then)")
    if exp.base and not exp.base_path().is_file():
        raise ExperimentError(f"{path}: base = {exp.base!r}: file not found (relative to the experiment file)")
    for where, table in (("zip", exp.zip), ("quick.zip", exp.quick.zip or {})):
        lengths = {len(v) for v in table.values()}
        if len(lengths) > 1:
            raise ExperimentError(f"{path}: {where}: lists of unequal lengths {sorted(lengths)}; "
                                  f"expected lists walked together")
    return exp


def load_experiments(folder: str | Path, only: list[str] | None = None) -> list[Experiment]:
    """Every `*.yaml` in `folder`, sorted by name; `only` keeps those names (unknown names are an error)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExperimentError(f"{folder}: experiment folder not found")
    experiments = [load_experiment(p) for p in sorted(folder.glob("*.yaml"))]
    if only:
        names = {e.name for e in experiments}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ExperimentError(f"--only {unknown[0]!r}: no such experiment in {folder}; "
                                  f"expected one of: {', '.join(sorted(names))}")
        experiments = [e for e in experiments if e.name in only]
    return experiments


def _text(value: Any) -> str:
    """An override value as `--set` text (YAML scalars: 64K stays a string, true a bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_points(experiments: list[Experiment], quick: bool = False, profile: str | None = None,
                 seed: int | None = None, check: bool = True, where: dict[str, str] | None = None) -> list:
    """The sweep points of every experiment. `profile` (a calibration profile) applies to every point
    that has a scenario; `seed` sets run.seed; `where` ({key: value}) drops points that set a key to
    another value (a subset of a grid, e.g. one agent count). With `check`, every point's scenario is
    loaded once so that a bad override fails before anything runs."""
    out = []
    for exp in experiments:
        grid, zipped, specs, fixed, options = exp.resolved(quick)
        base = exp.base_path()
        prof = profile or (str(Path(exp.path).parent / exp.profile) if exp.profile else None)
        for system, system_set in exp.system_overrides(quick).items():
            for spec in specs or [PointSpec()]:
                fixed_all = {**fixed, **system_set, **({"run.seed": seed} if seed is not None and base else {})}
                labels = {"experiment": exp.name, "task": exp.task, "policy": system,
                          **{k: _text(v) for k, v in spec.label.items()},
                          "options": json.dumps(options, sort_keys=True), "profile": prof or ""}
                for point in expand(str(base) if base else "", grid or None, zipped or None, [spec.set], labels,
                                    fixed=fixed_all):
                    over = dict(point.overrides)
                    if where and any(k in over and str(over[k]) != str(v) for k, v in where.items()):
                        continue
                    extra = tuple((col, over[key]) for col, key in exp.columns.items() if key in over)
                    if extra:  # columns read from the overrides (e.g. scale) join the labels
                        point = type(point)(point.base, point.overrides, point.labels + extra)
                    if check and base:
                        try:
                            load_point_scenario(point)
                        except ScenarioError as exc:
                            raise ExperimentError(f"{exp.path}: system {system!r}, point {_describe(over)}: "
                                                  f"{str(exc).replace('--set: ', 'override ')}") from None
                    out.append(point)
    return out


def _describe(combo: dict) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in combo.items()) + "}"


def point_labels(point) -> dict[str, Any]:
    return dict(point.labels)


def load_point_scenario(point):
    """The point's scenario: base file, the profile (dpsim.scenario.config's precedence: over the scenario,
    with its by_model entry, below the overrides), then the overrides."""
    profile = point_labels(point).get("profile")
    return load_scenario(point.base, [f"{k}={v}" for k, v in point.overrides], profiles=[profile] if profile else [])
