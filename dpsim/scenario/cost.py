"""What a run costs: the `cost:` scenario section and the figures derived from it.

    cost:
      gpu_hour: 2.50 USD/h            # price of one GPU for an hour (cloud list price or amortised)
      node_hour: 1.00 USD/h           # per node on top of its GPUs (host, chassis, rack, share of storage)
      storage_nic_hour: 0.05 USD/h    # per storage NIC (x hardware.storage_nic.count per node)
      gpu_power: 700W                 # electrical power per GPU (e.g. H800 SXM board power)
      energy_price: 0.12 USD/kWh      # 0 when gpu_hour already includes power

No prices ship as defaults: every field is 0 until the scenario sets it, because prices depend on the
buyer. Prices need a currency and a time unit ("USD/h", "$/h", "USD/hour"), power a unit ("700W",
"0.7kW"); a bare number is rejected (a price per second and per hour differ by 3600). One currency is
assumed throughout (USD).

Figures (added to a run's summary as `cost` when the scenario has a `cost:` section):
- cluster_usd_per_hour = GPUs x (gpu_hour + gpu_power x energy_price) + nodes x node_hour
  + storage NICs x storage_nic_hour, for the whole cluster (P + D nodes), busy or idle;
- gpu_hours = GPUs x the run's span (first arrival to last finished turn) / 3600 s, and usd = the
  cluster price over that span, energy_kwh = GPUs x gpu_power x span;
- usd_per_million_tokens = usd / (prompt + generated tokens of finished turns) x 1e6 (prompt tokens
  include the cached context each turn reloads), usd_per_million_output_tokens the same over
  generated tokens only, usd_per_trajectory = usd / trajectories started.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PRICE = re.compile(r"^\s*(?:\$\s*(?P<a>" + _NUMBER + r")|(?P<b>" + _NUMBER + r")\s*(?:USD|\$))\s*/\s*"
                    r"(?P<per>h|hr|hour|kWh)\s*$")
_POWER = re.compile(r"^\s*(?P<num>" + _NUMBER + r")\s*(?P<unit>W|kW)\s*$")


def _price(per: str, example: str):
    """A non-negative price per `per` ("h" or "kWh"), e.g. '2.5 USD/h' or '$2.5/h'."""
    def parse(value: Any) -> float:
        match = _PRICE.match(value) if isinstance(value, str) else None
        unit = match and ("kWh" if match.group("per") == "kWh" else "h")
        if not match or unit != per:
            raise ValueError(f"expected a price in USD per {'hour' if per == 'h' else 'kWh'}, e.g. '{example}'")
        number = float(match.group("a") or match.group("b"))
        if not number >= 0 or number == float("inf"):
            raise ValueError(f"expected a non-negative finite price, e.g. '{example}'")
        return number
    return BeforeValidator(parse)


def _power(value: Any) -> float:
    match = _POWER.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("expected a power with a unit, e.g. '700W' or '0.7kW'")
    watts = float(match.group("num")) * (1e3 if match.group("unit") == "kW" else 1.0)
    if not 0 <= watts < float("inf"):
        raise ValueError("expected a non-negative finite power, e.g. '700W'")
    return watts


def _written(unit: str) -> PlainSerializer:
    """Dump as the unit string it was read from (run.json, with_overrides copies read it back)."""
    return PlainSerializer(lambda x: f"{x!r} {unit}", return_type=str)


HourlyPrice = Annotated[float, _price("h", "2.5 USD/h"), _written("USD/h")]
EnergyPrice = Annotated[float, _price("kWh", "0.12 USD/kWh"), _written("USD/kWh")]
Watts = Annotated[float, BeforeValidator(_power), _written("W")]


class CostConfig(BaseModel):
    """Prices of the cluster (USD); all 0 unless set (no shipped prices: they depend on the buyer)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
    gpu_hour: HourlyPrice = "0 USD/h"
    node_hour: HourlyPrice = "0 USD/h"
    storage_nic_hour: HourlyPrice = "0 USD/h"
    gpu_power: Watts = "0W"
    energy_price: EnergyPrice = "0 USD/kWh"


def cluster_usd_per_hour(cost: CostConfig, nodes: int, gpus_per_node: int, storage_nics_per_node: int) -> float:
    """The whole cluster's price per hour, busy or idle (GPUs with their energy, nodes, storage NICs)."""
    gpus = nodes * gpus_per_node
    energy_per_gpu_hour = cost.gpu_power / 1e3 * cost.energy_price  # kW x USD/kWh
    return (gpus * (cost.gpu_hour + energy_per_gpu_hour) + nodes * cost.node_hour
            + nodes * storage_nics_per_node * cost.storage_nic_hour)


def scenario_usd_per_hour(scenario, prefill_nodes: int | None = None, decode_nodes: int | None = None) -> float:
    """`cluster_usd_per_hour` of a scenario's cluster (or of another P/D layout of it)."""
    cl = scenario.cluster
    nodes = (prefill_nodes or cl.prefill_nodes) + (decode_nodes or cl.decode_nodes)
    return cluster_usd_per_hour(scenario.cost, nodes, cl.gpus_per_node, scenario.hardware.storage_nic.count)


def run_cost(scenario, turns, agents: int) -> dict | None:
    """The cost figures of one run (see the module doc); None when the scenario has no cost section."""
    if scenario.cost is None:
        return None
    done = turns.dropna(subset=["t_finish"])
    span_s = float(done.t_finish.max() - turns.t_arrive.min()) if len(done) else 0.0
    cl = scenario.cluster
    gpus = (cl.prefill_nodes + cl.decode_nodes) * cl.gpus_per_node
    per_hour = scenario_usd_per_hour(scenario)
    usd = per_hour * span_s / 3600
    tokens = float(done.input_tokens.sum() + done.output_tokens.sum())
    output = float(done.output_tokens.sum())
    return {"cluster_usd_per_hour": _r(per_hour), "span_s": _r(span_s), "gpus": gpus,
            "gpu_hours": _r(gpus * span_s / 3600), "usd": _r(usd),
            "energy_kwh": _r(gpus * scenario.cost.gpu_power / 1e3 * span_s / 3600),
            "usd_per_million_tokens": _r(usd / tokens * 1e6) if tokens else None,
            "usd_per_million_output_tokens": _r(usd / output * 1e6) if output else None,
            "usd_per_trajectory": _r(usd / agents) if agents else None}


def _r(x: float) -> float:
    return float(f"{float(x):.6g}")
