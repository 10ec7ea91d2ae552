"""The cost: section: validated prices and power, cost figures in the summary, plan ranked by cost."""

import pandas as pd
import pytest
from click.testing import CliRunner

from dpsim import api
from dpsim.cli.app import main
from dpsim.planning import plan
from dpsim.scenario import cost

QUICK = "scenarios/quickstart.yaml"
TINY = ["workload.agents=6", "workload.max_turns=3"]


@pytest.mark.parametrize("setting, message", [
    ("cost.gpu_hour=2.5", "cost.gpu_hour = 2.5: expected a price in USD per hour, e.g. '2.5 USD/h'"),
    ("cost.gpu_hour=2.5 USD/s", "cost.gpu_hour = '2.5 USD/s': expected a price in USD per hour"),
    ("cost.node_hour=-1 USD/h", "cost.node_hour = '-1 USD/h': expected a non-negative finite price"),
    ("cost.gpu_power=700", "cost.gpu_power = 700: expected a power with a unit, e.g. '700W'"),
    ("cost.energy_price=0.1 USD/h", "cost.energy_price = '0.1 USD/h': expected a price in USD per kWh"),
    ("cost.gpu_hour=nan USD/h", "cost.gpu_hour = 'nan USD/h'"),
])
def test_bad_prices_are_located_one_line_errors(setting, message):
    result = CliRunner().invoke(main, ["validate", QUICK, "--set", setting])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.output


def test_prices_parse_with_units():
    sc = api.load_scenario(QUICK, ["cost.gpu_hour=$2.5/h", "cost.node_hour=4 USD/hour", "cost.gpu_power=0.7kW",
                                   "cost.energy_price=0.1 USD/kWh", "cost.storage_nic_hour=0.5USD/h"])
    assert (sc.cost.gpu_hour, sc.cost.node_hour, sc.cost.gpu_power, sc.cost.energy_price) == (2.5, 4.0, 700.0, 0.1)
    # 2 nodes x 8 GPUs x (2.5 + 0.7 kW x 0.1) + 2 x 4 + 2 x 1 NIC x 0.5
    assert cost.scenario_usd_per_hour(sc) == pytest.approx(16 * 2.57 + 8 + 1)
    assert api.with_overrides(sc, run={"seed": 3}).cost == sc.cost  # survives a copy


def test_cost_figures_in_the_summary_follow_from_the_run():
    plain = api.run(api.load_scenario(QUICK, TINY), progress=False)
    assert "cost" not in plain.summary  # no cost: section, no cost figures
    priced = api.run(api.load_scenario(QUICK, TINY + ["cost.gpu_hour=3.6 USD/h", "cost.gpu_power=500W"]),
                     progress=False)
    assert {k: v for k, v in priced.summary.items() if k != "cost"} == plain.summary
    c, turns = priced.summary["cost"], priced.turns
    span = turns.t_finish.max() - turns.t_arrive.min()
    assert c["gpus"] == 16 and c["span_s"] == pytest.approx(span, rel=1e-5)
    assert c["usd"] == pytest.approx(16 * 3.6 * span / 3600, rel=1e-5)
    assert c["gpu_hours"] == pytest.approx(16 * span / 3600, rel=1e-5)
    assert c["energy_kwh"] == pytest.approx(16 * 0.5 * span / 3600, rel=1e-5)
    tokens = turns.input_tokens.sum() + turns.output_tokens.sum()
    assert c["usd_per_million_tokens"] == pytest.approx(c["usd"] / tokens * 1e6, rel=1e-5)
    assert c["usd_per_trajectory"] == pytest.approx(c["usd"] / 6, rel=1e-5)


def test_run_prints_the_cost_rows(tmp_path):
    result = CliRunner().invoke(main, ["run", QUICK, "--set", TINY[0], "--set", TINY[1], "--set",
                                       "cost.gpu_hour=2 USD/h", "--no-plots", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for label in ("GPU-hours", "$ per million tokens", "$ per agent trajectory"):
        assert label in result.output


def test_plan_prices_layouts_by_copies_needed_for_the_target():
    base = api.load_scenario(QUICK, ["cost.gpu_hour=1 USD/h", "cost.node_hour=2 USD/h"])
    table = pd.DataFrame({"prefill_nodes": [1, 1, 2], "decode_nodes": [1, 2, 2], "capacity_aps": [3.0, 10.0, 0.0],
                          "status": ["ok", "ok", "ok"]})
    plan._add_cost(table, base, target_aps=5.0)
    # 1P1D: 16 GPUs + 2 nodes = 20 USD/h, 2 copies for 5 APS; 1P2D: 24 + 6 = 30 USD/h, one copy; 0 APS: none.
    assert list(table.usd_per_hour) == [20.0, 30.0, 40.0]
    assert list(table.copies_for_target[:2]) == [2, 1] and pd.isna(table.copies_for_target[2])
    assert list(table.usd_per_hour_at_target[:2]) == [40.0, 30.0]
    assert table.usd_per_trajectory_at_target[1] == pytest.approx(30.0 / (5 * 3600))
