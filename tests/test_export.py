"""Metrics in vLLM bench serve / AIPerf names and units, checked against dpsim's own summary."""

import json

import pytest
from click.testing import CliRunner

from dpsim.cli.app import main

QUICK = "scenarios/quickstart.yaml"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    result = CliRunner().invoke(main, ["run", QUICK, "--set", "workload.agents=8", "--set", "workload.max_turns=4",
                                       "--set", "slo.ttft=20ms", "--no-plots", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_exported_metrics_agree_with_the_summary(run_folder):
    result = CliRunner().invoke(main, ["export-metrics", str(run_folder)])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_folder / "summary.json").read_text())
    vllm = json.loads((run_folder / "vllm_bench_serve.json").read_text())
    aiperf = json.loads((run_folder / "profile_export_aiperf.json").read_text())
    assert vllm["completed"] == summary["turns"] == aiperf["request_count"]["avg"]
    assert vllm["mean_ttft_ms"] == pytest.approx(summary["ttft_s"]["mean"] * 1e3, rel=1e-6)
    assert vllm["p90_ttft_ms"] == pytest.approx(summary["ttft_s"]["p90"] * 1e3, rel=1e-6)
    assert aiperf["time_to_first_token"]["unit"] == "ms"
    assert aiperf["time_to_first_token"]["p50"] == pytest.approx(vllm["median_ttft_ms"])
    assert aiperf["inter_token_latency"]["avg"] == pytest.approx(vllm["mean_tpot_ms"])
    # The vLLM TPOT counts from the first token, dpsim's from the second: both near the decode step.
    assert vllm["mean_tpot_ms"] == pytest.approx(summary["tpot_s"]["mean"] * 1e3, rel=0.5)
    assert vllm["mean_e2el_ms"] > vllm["mean_ttft_ms"]
    # A 20 ms TTFT SLO: goodput is the share of requests within it, per second.
    assert 0 < vllm["request_goodput"] < vllm["request_throughput"]
    assert vllm["request_goodput"] / vllm["request_throughput"] == pytest.approx(summary["slo_attainment"], abs=1e-9)


def test_export_of_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["export-metrics", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.output and "Traceback" not in result.output
