"""Plausibility warnings: values inside the physical ranges (`dpsim.scenario.config`) that are still unlikely
for real hardware or a real SLO, usually a unit slip ("400GB/s" where 400 Gbps was meant, a bare
`50` TPOT read as 50 s). They go to stderr and do not stop a run; `--strict` turns them into errors.
The thresholds are listed in docs/validation-of-inputs.md.
"""

from __future__ import annotations

from typing import Any

from dpsim.scenario import units
from dpsim.scenario.config import Scenario

GBPS = 1e9 / 8  # bytes/s in one Gbit/s
NIC_RANGE_BPS = (1 * GBPS, 10_000 * GBPS)  # a datacenter NIC: 1 Gbps .. 10 Tbps
HOST_MEMORY_RANGE_BPS = (10e9, 10e12)  # host DRAM bandwidth: 10 GB/s .. 10 TB/s
NIC_LINE_RATES_GBPS = (10, 25, 40, 50, 100, 200, 400, 800, 1600)  # numbers NIC rates are sold in
TPOT_MAX_S = 1.0  # a time per output token over 1 s is not an interactive SLO
TTFT_MAX_S = 600.0
READ_EFFICIENCY_MIN = 0.05


def _raw(data: dict, loc: tuple[str, ...]) -> Any:
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _gbps(bytes_per_s: float) -> str:
    return f"{bytes_per_s / GBPS:.4g} Gbps"


def plausibility_warnings(scenario: Scenario, data: dict) -> list[tuple[tuple[str, ...], str]]:
    """(field location, message) for every implausible value of a validated `scenario`; `data` is
    the raw input it was validated from (to see how a value was written)."""
    hw = scenario.hardware
    found: list[tuple[tuple[str, ...], str]] = []
    for loc, value in ((("hardware", "compute_nic", "bandwidth"), hw.compute_nic.bandwidth),
                       (("hardware", "storage_nic", "bandwidth"), hw.storage_nic.bandwidth)):
        low, high = NIC_RANGE_BPS
        if not low <= value <= high:
            found.append((loc, f"{_gbps(value)} is outside the usual NIC range 1 Gbps .. 10 Tbps"))
        written = _raw(data, loc)
        if isinstance(written, str) and units.has_unit(written) and "B/s" in written:
            number = written.split("B/s")[0].rstrip("kKMGTPi ")
            try:
                looks_like_line_rate = float(number) in NIC_LINE_RATES_GBPS
            except ValueError:
                looks_like_line_rate = False
            if looks_like_line_rate and value >= 100e9:
                found.append((loc, f"{written} is {_gbps(value)}; NIC line rates are quoted in bits: did you mean "
                                   f"'{number}Gbps'?"))
    low, high = HOST_MEMORY_RANGE_BPS
    if not low <= hw.host.memory_bandwidth <= high:
        found.append((("hardware", "host", "memory_bandwidth"),
                      f"{hw.host.memory_bandwidth / 1e9:.4g} GB/s is outside the usual range 10 GB/s .. 10 TB/s"))
    if hw.storage.read_efficiency < READ_EFFICIENCY_MIN:
        found.append((("hardware", "storage", "read_efficiency"),
                      f"storage reads at {100 * hw.storage.read_efficiency:.3g} % of the NIC line rate"))
    if scenario.slo.tpot > TPOT_MAX_S:
        found.append((("slo", "tpot"), f"a TPOT SLO of {scenario.slo.tpot:g} s per token; a bare number is "
                                       "seconds: did you mean ms (e.g. '50ms')?"))
    if scenario.slo.ttft > TTFT_MAX_S:
        found.append((("slo", "ttft"), f"a TTFT SLO of {scenario.slo.ttft:g} s"))
    return found
