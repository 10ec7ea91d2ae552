"""Quantities with units, parsed in one place.

Every quantity in a scenario may be written as a string with a unit ("400Gbps", "50GB/s", "2us",
"80GiB", "990TFLOPS", "64K" tokens) or as a bare number already in SI base units (bytes, bytes/s,
seconds, FLOP/s, tokens). Internally dpsim uses SI floats: bytes, bytes per second, seconds, FLOP/s.

Decimal prefixes (k, M, G, T, P) are powers of 1000; binary prefixes (Ki, Mi, Gi, Ti) powers of 1024.
Bits are converted to bytes (1 B = 8 b): "400Gbps" == "400Gbit/s" == 50e9 bytes/s.

Every parser rejects booleans, infinities and NaN: a quantity is a finite number. Whether a bare
number is acceptable (SI base units) is the caller's decision: scenario files require a unit where
one is ambiguous (see `dpsim.scenario.config` and docs/validation-of-inputs.md).
"""

from __future__ import annotations

import math
import re

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}

_NUMBER = r"(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PATTERN = re.compile(r"^\s*" + _NUMBER + r"\s*(?P<unit>[A-Za-zµ/]*)\s*$")


class UnitError(ValueError):
    """A quantity string that cannot be read as the expected kind of quantity."""


def _split(text: str) -> tuple[float, str]:
    match = _PATTERN.match(text)
    if not match:
        raise UnitError(f"'{text}' is not a number followed by a unit")
    return float(match.group("num")), match.group("unit")


def _prefix_factor(prefix: str) -> float | None:
    if prefix in _BINARY:
        return _BINARY[prefix]
    if prefix in _DECIMAL:
        return _DECIMAL[prefix]
    return None


def parse_bytes(value: str | int | float) -> float:
    """Size in bytes: "80GiB", "2.6MB", "656B", 1024."""
    return _parse(value, "size", _bytes_unit)


def parse_bandwidth(value: str | int | float) -> float:
    """Bandwidth in bytes/s: "400Gbps", "400Gbit/s", "50GB/s", "3.35TB/s"."""
    return _parse(value, "bandwidth", _bandwidth_unit)


def parse_time(value: str | int | float) -> float:
    """Duration in seconds: "2us", "300ms", "4s", "1.5min"."""
    return _parse(value, "duration", _time_unit)


def parse_flops(value: str | int | float) -> float:
    """Compute rate in FLOP/s: "990TFLOPS", "1.98PFLOP/s"."""
    return _parse(value, "compute rate", _flops_unit)


def parse_count(value: str | int | float) -> float:
    """A plain count with an optional decimal or binary multiplier: "64K" tokens = 65,536.

    Token counts follow the field's convention: "32K" context means 32 x 1024 tokens.
    """
    return _parse(value, "count", _count_unit)


def parse_rate(value: str | int | float) -> float:
    """Events per second: "0.4/s", "2/min", 0.4."""
    return _parse(value, "rate", _rate_unit)


def _parse(value, kind: str, unit_factor) -> float:
    if isinstance(value, bool):
        raise UnitError(f"expected a {kind}, got a boolean")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        number, unit = _split(value)
    else:
        raise UnitError(f"expected a {kind} as a number or a string with a unit, got {type(value).__name__}")
    factor = unit_factor(unit)
    if factor is None:
        raise UnitError(f"'{value}': unknown {kind} unit '{unit}'")
    quantity = number * factor
    if not math.isfinite(quantity):
        raise UnitError(f"'{value}' is not a finite {kind}")
    return quantity


def has_unit(value: str | int | float) -> bool:
    """Whether `value` is written with a unit ("400Gbps": True; 400, "400", "400.0": False)."""
    if not isinstance(value, str):
        return False
    match = _PATTERN.match(value)
    return bool(match and match.group("unit"))


def _bytes_unit(unit: str) -> float | None:
    if unit == "":
        return 1.0
    if unit.endswith("B"):
        return _prefix_factor(unit[:-1])
    if unit.endswith("bit"):
        factor = _prefix_factor(unit[:-3])
        return None if factor is None else factor / 8
    return None


def _bandwidth_unit(unit: str) -> float | None:
    if unit == "":
        return 1.0
    if unit.endswith("bps"):
        factor = _prefix_factor(unit[:-3])
        return None if factor is None else factor / 8
    if unit.endswith("/s"):
        return _bytes_unit(unit[:-2])
    return None


def _time_unit(unit: str) -> float | None:
    if unit == "":
        return 1.0
    return _TIME.get(unit)


def _flops_unit(unit: str) -> float | None:
    if unit == "":
        return 1.0
    for suffix in ("FLOPS", "FLOP/s", "flops"):
        if unit.endswith(suffix):
            return _DECIMAL.get(unit[: -len(suffix)])
    return None


def _count_unit(unit: str) -> float | None:
    # Counts use binary multipliers for K/M ("64K" tokens) as the paper and the field do.
    return {"": 1.0, "K": 1024.0, "k": 1024.0, "M": 1024.0**2, "Ki": 1024.0, "Mi": 1024.0**2}.get(unit)


def _rate_unit(unit: str) -> float | None:
    return {"": 1.0, "/s": 1.0, "/min": 1 / 60.0, "/h": 1 / 3600.0}.get(unit)


def format_bytes(n: float) -> str:
    """Human-readable decimal size, e.g. 2.6 GB."""
    for unit, factor in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n:.0f} B"
