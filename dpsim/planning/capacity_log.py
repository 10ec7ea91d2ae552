"""The trial log of `dpsim capacity --out OUT`: every trial is on disk as soon as it finishes.

    OUT/search.json   the resolved scenario and the search options (written before the first trial)
    OUT/trials.jsonl  one JSON line per finished trial: {"system": ..., "aps": ..., ...}

`--resume` checks that search.json describes the same search, then hands the logged trials to
`find_capacity(known=...)`, which runs only the trials that are missing. A line torn by a kill is
ignored (that trial runs again).
"""

from __future__ import annotations

import json
from pathlib import Path

from dpsim.metrics.runs import first_difference, scenario_record
from dpsim.scenario.config import Scenario, ScenarioError


class TrialLog:
    """Append-only trial log of one capacity search folder."""

    def __init__(self, out_dir: str | Path, scenario: Scenario, options: dict, resume: bool = False):
        self.dir = Path(out_dir)
        self.header = {"scenario": scenario_record(scenario), "options": json.loads(json.dumps(options))}
        self.known: dict[str, dict[float, dict]] = {}
        search, log = self.dir / "search.json", self.dir / "trials.jsonl"
        if resume and search.is_file():
            earlier = json.loads(search.read_text())
            diff = first_difference(earlier, self.header)
            if diff:
                raise ScenarioError(f"{search}: the interrupted search differs ({diff}); use another --out, "
                                    f"or drop --resume to start again")
            self.known = read_trials(log)
        else:
            log.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        search.write_text(json.dumps(self.header, indent=2) + "\n")
        self._log = log

    def done(self, system: str) -> dict[float, dict]:
        """{aps: trial} already finished for `system`."""
        return self.known.get(system, {})

    def append(self, system: str, trial: dict) -> None:
        with self._log.open("a") as f:
            f.write(json.dumps({"system": system, **trial}, default=float) + "\n")
            f.flush()


def read_trials(path: str | Path) -> dict[str, dict[float, dict]]:
    """{system: {aps: trial}} from a trials.jsonl; lines that do not parse (a torn write) are skipped."""
    trials: dict[str, dict[float, dict]] = {}
    path = Path(path)
    if not path.is_file():
        return trials
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        system = row.pop("system", None)
        if system and "aps" in row:
            trials.setdefault(system, {})[row["aps"]] = row
    return trials
