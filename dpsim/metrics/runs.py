"""Run folders that outlive an interruption: find a finished run again (`--resume`).

`compare --out OUT` writes each system's run to OUT/<system>/ as soon as it finishes
(`Result.write`, summary.json last). `compare --resume` reads back every run whose folder is complete
and holds the same resolved scenario, and simulates only the others.
"""

from __future__ import annotations

import json
from pathlib import Path

from dpsim.metrics.results import Result
from dpsim.scenario.config import Scenario, ScenarioError


def scenario_record(scenario: Scenario) -> dict:
    """The resolved scenario as run.json stores it (JSON types, so records compare equal)."""
    return json.loads(json.dumps(scenario.model_dump(mode="json"), default=str))


def first_difference(a, b, path: str = "") -> str | None:
    """The first field (dotted) where two scenario records differ, with both values; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} there, {b!r} now"


def stored_run(folder: str | Path, scenario: Scenario) -> Result | None:
    """The finished run of `scenario` in `folder`; None when the folder has no complete run.
    A complete run of another scenario raises ScenarioError (resuming it would mix two questions)."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file() or not (folder / "run.json").is_file():
        return None
    try:
        result = Result.read(folder)
    except (OSError, ValueError):  # a torn folder (killed while writing): run it again
        return None
    diff = first_difference(result.run_info.get("scenario"), scenario_record(scenario))
    if diff:
        raise ScenarioError(f"{folder}: holds a run of another scenario ({diff}); use another --out, "
                            f"or drop --resume to replace it")
    return result
