"""The raw-sample record schema, checked once when a raw file is read (``measure.read_samples``), so
that the fitters and the closure only ever see well-typed records and a bad file gets one located
line (``file:line: field: problem``) instead of a traceback deep inside a fit.

Records are free-form JSON objects (``kind`` says what was measured); the fields below are checked
wherever they appear (null means absent), and each kind that a fitter or the closure reads must carry the fields it reads.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import CalibrateError

FIT_KINDS = ("transport", "storage", "copy", "gpu")

POSITIVE_INTS = ("size", "count", "depth", "concurrency", "block_size", "blocks_per_request")
NON_NEGATIVE_INTS = ("bytes", "request", "rep", "flow", "priority", "bucket_bytes")
POSITIVE_NUMBERS = ("elapsed_s", "flop_rate")
NON_NEGATIVE_NUMBERS = ("t_done", "t_start", "t_submit", "gap_s")
HASHABLE = ("experiment", "group", "link", "op", "kind", "what")

# kind -> fields a consumer reads without a default
REQUIRED = {
    "loader": ("experiment", "request", "path", "t_done", "bytes"),
    "priority": ("group", "flow", "priority", "bytes", "t_start", "elapsed_s"),
}
LOADER_CONFIG = ("block_size", "blocks_per_request", "depth", "paths")
LOADER_PATHS = ("pe", "de")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(record: dict, where: str) -> None:
    for key in POSITIVE_INTS:
        if record.get(key) is not None and not (_is_int(record[key]) and record[key] >= 1):
            raise CalibrateError(f"{where}: '{key}' must be an integer >= 1, got {record[key]!r}")
    for key in NON_NEGATIVE_INTS:
        if record.get(key) is not None and not (_is_int(record[key]) and record[key] >= 0):
            raise CalibrateError(f"{where}: '{key}' must be an integer >= 0, got {record[key]!r}")
    for key in POSITIVE_NUMBERS:
        if record.get(key) is not None and not (_is_number(record[key]) and record[key] > 0):
            raise CalibrateError(f"{where}: '{key}' must be a finite number > 0, got {record[key]!r}")
    for key in NON_NEGATIVE_NUMBERS:
        if record.get(key) is not None and not (_is_number(record[key]) and record[key] >= 0):
            raise CalibrateError(f"{where}: '{key}' must be a finite number >= 0, got {record[key]!r}")
    for key in HASHABLE:
        if key in record and not isinstance(record[key], (str, int, float, type(None))):
            raise CalibrateError(f"{where}: '{key}' must be a string or a number, got {type(record[key]).__name__}")


def check_record(record: Any, where: str) -> dict:
    """`record` if it is a raw-sample record every consumer can read; a located CalibrateError if not."""
    if not isinstance(record, dict):
        raise CalibrateError(f"{where}: a raw sample must be a JSON object, got {type(record).__name__}")
    _check_fields(record, where)
    kind = record.get("kind")
    needed = REQUIRED.get(kind, ())
    if kind in FIT_KINDS and "elapsed_s" in record:
        needed = ("size",)
    missing = [key for key in needed if record.get(key) is None]
    if missing:
        raise CalibrateError(f"{where}: a '{kind}' record needs {', '.join(missing)}")
    if kind == "loader" and record["path"] not in LOADER_PATHS:
        raise CalibrateError(f"{where}: 'path' must be 'pe' or 'de', got {record['path']!r}")
    if kind == "experiment" and record.get("what") == "loader":
        config = record.get("config")
        if not isinstance(config, dict):
            raise CalibrateError(f"{where}: a loader experiment needs a 'config' object")
        _check_fields(config, f"{where}: config")
        missing = [key for key in LOADER_CONFIG if config.get(key) is None]
        if missing:
            raise CalibrateError(f"{where}: a loader experiment's config needs {', '.join(missing)}")
        if "experiment" not in record:
            raise CalibrateError(f"{where}: a loader experiment needs 'experiment'")
    return record
