"""Every what-if switch of docs/whatif.md, switched off, gives the results dpsim gave before the
switches existed: the summaries in tests/data/whatif-switches-off-summary.json were written by the
commit before them (d562388) for this small storage-bound scenario. If a deliberate model change
moves these numbers, rewrite the file from the same scenario with the switches off, and say so in
the commit."""

import json
from pathlib import Path

import pytest

from dpsim import api

BASELINE = Path(__file__).parent / "data" / "whatif-switches-off-summary.json"
SETTING = ["workload.mal=64K", "workload.agents=16", "workload.max_turns=12", "hardware.storage_nic.bandwidth=25Gbps"]
# model.indexer_keys_cached came after the baseline (docs/modeling.md#indexer-key-cache): off, it must give it too.
SWITCHES_OFF = ["hardware.dram_tier.enabled=false", "policy.de_bypass=false", "workload.tool_latency=0s",
                "model.indexer_keys_cached=false"]


@pytest.mark.parametrize("system", ["basic", "dualpath"])
def test_switched_off_summary_is_unchanged(system):
    expected = json.loads(BASELINE.read_text())[system]
    sc = api.load_scenario("scenarios/quickstart.yaml", SETTING + SWITCHES_OFF + [f"policy.system={system}"])
    summary = json.loads(json.dumps(api.run(sc, progress=False).summary))
    assert summary == expected
