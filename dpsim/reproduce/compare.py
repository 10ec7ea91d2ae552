"""`dpsim compare-points OLD NEW`: do the rows of a table still come out of the simulator?

A paper-scale set takes hours and is assembled over several runs (and sources) into
`docs/data/points.csv`. Re-running some or all of its points with the current source and comparing
the new rows with the old ones, cell by cell, says which rows still hold. Rows are matched on
(experiment, key); a cell is equal when both are blank, equal as text, or numbers within `rtol`.
A cell that is blank in OLD and set in NEW is a column added since OLD ran, counted apart, not a
difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

# Columns that name a point rather than measure it (the match is on these).
_ID_COLUMNS = ("experiment", "key")


@dataclass
class CellChange:
    column: str
    old: object
    new: object

    def text(self) -> str:
        change = ""
        if _is_number(self.old) and _is_number(self.new) and float(self.old) != 0:  # type: ignore[arg-type]
            change = f" ({(float(self.new) / float(self.old) - 1) * 100:+.3g} %)"  # type: ignore[arg-type]
        return f"{self.column} {self.old} -> {self.new}{change}"


@dataclass
class Comparison:
    """The outcome of comparing NEW's rows with OLD's."""

    compared: int = 0
    differing: list[tuple[str, str, str, list[CellChange]]] = field(default_factory=list)  # experiment, policy, key
    added_columns: dict[str, int] = field(default_factory=dict)  # column -> rows blank in OLD, set in NEW
    not_in_old: int = 0  # ok rows of NEW with no ok row in OLD
    not_ok_in_new: list[tuple[str, str, str]] = field(default_factory=list)  # experiment, policy, error
    by_experiment: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (compared, differing)

    @property
    def identical(self) -> int:
        return self.compared - len(self.differing)


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _is_number(value) -> bool:
    if isinstance(value, bool) or _is_blank(value):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _equal(old, new, rtol: float) -> bool:
    if _is_blank(old) and _is_blank(new):
        return True
    if _is_number(old) and _is_number(new):
        a, b = float(old), float(new)
        return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    return str(old) == str(new)


def compare_points(old: pd.DataFrame, new: pd.DataFrame, rtol: float = 0.0) -> Comparison:
    """Compare every ok row of `new` with the ok row of `old` for the same point, on the columns both
    tables have."""
    result = Comparison()
    # A point with several ok rows keeps its last (as validation-report --merged does): later rows overwrite.
    by_point = {(row["experiment"], str(row["key"])): row for row in old[old.status.eq("ok")].to_dict("records")}
    columns = [c for c in new.columns if c in old.columns and c not in _ID_COLUMNS]
    for row in new.to_dict("records"):
        if row["status"] != "ok":
            error = row.get("error")
            result.not_ok_in_new.append((row["experiment"], row["policy"], "" if _is_blank(error) else str(error)))
            continue
        before = by_point.get((row["experiment"], str(row["key"])))
        if before is None:
            result.not_in_old += 1
            continue
        result.compared += 1
        changes = []
        for column in columns:
            if _is_blank(before[column]) and not _is_blank(row[column]):
                result.added_columns[column] = result.added_columns.get(column, 0) + 1
            elif not _equal(before[column], row[column], rtol):
                changes.append(CellChange(column, before[column], row[column]))
        if changes:
            result.differing.append((row["experiment"], row["policy"], str(row["key"]), changes))
        seen, differing = result.by_experiment.get(row["experiment"], (0, 0))
        result.by_experiment[row["experiment"]] = (seen + 1, differing + bool(changes))
    return result


def comparison_text(result: Comparison, old_name: str, new_name: str, rtol: float) -> str:
    """The comparison as lines for a terminal or a session note."""
    tolerance = "exactly, as written" if rtol == 0 else f"within rtol {rtol:g}"
    lines = [(f"{result.compared} points of {new_name} found in {old_name}: {result.identical} identical "
              f"({tolerance}), {len(result.differing)} differ")]
    for name, (seen, differing) in result.by_experiment.items():
        lines.append(f"  {name:18s} {seen:4d} compared  {differing:4d} differ")
    for experiment, policy, key, changes in result.differing:
        lines.append(f"differs: {experiment} {policy} key {key}: " + "; ".join(c.text() for c in changes))
    if result.added_columns:
        added = ", ".join(f"{c} ({n} rows)" for c, n in sorted(result.added_columns.items()))
        lines.append(f"columns blank in {old_name} and now set (added since those rows ran): {added}")
    if result.not_in_old:
        lines.append(f"{result.not_in_old} ok points of {new_name} have no ok row in {old_name}")
    for experiment, policy, error in result.not_ok_in_new:
        lines.append(f"failed in {new_name}: {experiment} {policy}: {error}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ speed-ups across profiles or sources
# What names a point apart from its system: a point's key also hashes its profile, so rows run under
# two profiles are matched on these labels instead.
_LABEL_COLUMNS = ("experiment", "model", "layout", "mal", "agents", "aps", "scale")


@dataclass
class SpeedupChange:
    """One point's Basic/DualPath JCT ratio (and DualPath/Oracle, where the Oracle ran) in OLD and NEW."""

    labels: dict
    old: float
    new: float
    old_oracle_gap: float | None = None
    new_oracle_gap: float | None = None

    @property
    def change(self) -> float:
        return self.new / self.old - 1

    def text(self) -> str:
        where = " ".join(f"{k}={_label_text(k, v)}" for k, v in self.labels.items() if k != "experiment" and v != "")
        line = f"{self.labels['experiment']} {where}: speed-up {self.old:.3g} -> {self.new:.3g} ({self.change * 100:+.1f} %)"
        if self.old_oracle_gap is not None and self.new_oracle_gap is not None:
            line += f"; DualPath/Oracle {self.old_oracle_gap:.3f} -> {self.new_oracle_gap:.3f}"
        return line


def _label_text(column: str, value) -> str:
    if column == "mal" and _is_number(value):
        return f"{float(value) / 1024:g}K"
    return f"{float(value):g}" if _is_number(value) else str(value)


def _jct_by_point(table: pd.DataFrame, labels: list[str]) -> dict[tuple, dict[str, float]]:
    """(label values) -> {policy: JCT} over the ok rows that have a JCT."""
    out: dict[tuple, dict[str, float]] = {}
    for row in table[table.status.eq("ok")].to_dict("records"):
        jct = row.get("jct_s")
        if not _is_number(jct):
            continue
        point = tuple("" if _is_blank(row[c]) else row[c] for c in labels)
        out.setdefault(point, {})[str(row["policy"])] = float(jct)
    return out


def _oracle_gap(jct: dict[str, float]) -> float | None:
    return jct["dualpath"] / jct["oracle"] if "oracle" in jct else None


def speedup_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[SpeedupChange]:
    """Every point with both a Basic and a DualPath JCT in OLD and in NEW (matched on `_LABEL_COLUMNS`,
    so the two tables may come from different profiles), in NEW's order."""
    labels = [c for c in _LABEL_COLUMNS if c in new.columns and c in old.columns]
    before, after = _jct_by_point(old, labels), _jct_by_point(new, labels)
    both = {"basic", "dualpath"}
    changes = []
    for point, jct in after.items():
        was = before.get(point)
        if was is None or not both <= jct.keys() or not both <= was.keys():
            continue
        changes.append(SpeedupChange(dict(zip(labels, point)), was["basic"] / was["dualpath"],
                                     jct["basic"] / jct["dualpath"], _oracle_gap(was), _oracle_gap(jct)))
    return changes


def speedup_text(changes: list[SpeedupChange], threshold: float, old_name: str, new_name: str) -> str:
    """How many points were compared and how many moved, then each point whose speed-up moved by more
    than `threshold` (a fraction)."""
    moved = [c for c in changes if abs(c.change) > threshold]
    lines = [f"{len(changes)} points with Basic and DualPath in both {old_name} and {new_name}: "
             f"{len(moved)} speed-ups moved by more than {threshold * 100:g} %"]
    lines += ["  " + c.text() for c in moved]
    return "\n".join(lines) + "\n"
