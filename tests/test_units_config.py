"""Units and scenario loading: parsing, includes, overrides, located errors."""

import dataclasses

import pytest

from dpsim.scenario import units
from dpsim.scenario.config import ScenarioError, SchedulerName, System
from dpsim.scenario.loading import load_scenario

QUICK = "scenarios/quickstart.yaml"


@pytest.mark.parametrize("text,expected", [("400Gbps", 50e9), ("400Gbit/s", 50e9), ("50GB/s", 50e9),
                                           ("3.35TB/s", 3.35e12), (1e9, 1e9), ("1GiB/s", 2**30)])
def test_bandwidth(text, expected):
    assert units.parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [("2us", 2e-6), ("300ms", 0.3), ("4s", 4.0), ("1.5min", 90.0)])
def test_time(text, expected):
    assert units.parse_time(text) == pytest.approx(expected)


def test_sizes_counts_flops():
    assert units.parse_bytes("80GiB") == 80 * 2**30
    assert units.parse_bytes("80GB") == 80e9
    assert units.parse_count("64K") == 65536
    assert units.parse_flops("990TFLOPS") == pytest.approx(990e12)


@pytest.mark.parametrize("bad", ["400", "fast", "400Gbpss", "10 parsecs"])
def test_bad_bandwidth_units(bad):
    if bad == "400":
        assert units.parse_bandwidth(bad) == 400.0  # a bare number is SI bytes/s
        return
    with pytest.raises(units.UnitError):
        units.parse_bandwidth(bad)


def test_include_merges_with_later_keys_winning():
    sc = load_scenario(QUICK)
    assert sc.hardware.gpu.hbm_capacity == 80e9  # from the preset
    assert sc.cluster.prefill_nodes == 1  # from the scenario
    sc2 = load_scenario(QUICK, ["hardware.gpu.hbm_capacity=96GB", "policy.system=oracle"])
    assert sc2.hardware.gpu.hbm_capacity == 96e9
    assert sc2.effective_policy().free_io is True


def test_policy_system_sets_ablation_defaults():
    basic = load_scenario(QUICK, ["policy.system=basic"]).effective_policy()
    assert dataclasses.asdict(basic) == {"system": "basic", "layerwise": False, "dual_path": False,
                                         "scheduler": "round_robin", "isolation": False, "kv_read": "at_pass",
                                         "free_io": False}
    assert basic.system is System.BASIC and basic.scheduler is SchedulerName.ROUND_ROBIN
    ladder = load_scenario(QUICK, ["policy.system=basic", "policy.layerwise=true"]).effective_policy()
    assert ladder.layerwise is True and ladder.dual_path is False


@pytest.mark.parametrize("override,fragment", [
    ("hardware.storage_nic.bandwidth=-400Gbps", "hardware.storage_nic.bandwidth = '-400Gbps': expected a positive"),
    ("hardware.gpu.hbm_bandwidth=3TB", "unknown bandwidth unit 'TB'"),
    ("cluster.prefill_nodes=0", "cluster.prefill_nodes = 0"),
    ("hardware.bogus=1", "unknown key 'bogus' in hardware"),
    ("policy.system=magic", "policy.system = 'magic'"),
])
def test_bad_input_is_one_located_line(override, fragment):
    with pytest.raises(ScenarioError) as err:
        load_scenario(QUICK, [override])
    message = str(err.value)
    assert fragment in message and "\n" not in message and message.startswith("--set")


def test_error_names_the_file_that_set_the_field(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("hardware:\n  host: {memory_bandwidth: lots}\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("include: [preset.yaml]\ncluster: {prefill_nodes: 1, decode_nodes: 1}\nmodel: {name: ds27b}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(scenario)
    assert str(err.value).startswith(f"{preset}: hardware.host.memory_bandwidth = 'lots'")


def test_missing_include_and_bad_yaml(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("include: [nowhere.yaml]\n")
    with pytest.raises(ScenarioError, match="nowhere.yaml: file not found"):
        load_scenario(scenario)
    scenario.write_text("cluster: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(scenario)


def test_by_model_applies_only_the_scenarios_model_and_set_still_wins(tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text("by_model:\n  ds27b: {hardware: {gpu: {gemm_efficiency: 0.31}}}\n"
                       "  qwen32b: {hardware: {gpu: {gemm_efficiency: 0.52}}}\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("include: [profile.yaml]\ncluster: {prefill_nodes: 1, decode_nodes: 1}\nmodel: {name: ds27b}\n")
    assert load_scenario(scenario).hardware.gpu.gemm_efficiency == pytest.approx(0.31)
    assert load_scenario(scenario, ["model.name=qwen32b"]).hardware.gpu.gemm_efficiency == pytest.approx(0.52)
    assert load_scenario(scenario, ["model.name=ds660b"]).hardware.gpu.gemm_efficiency == pytest.approx(0.68)
    assert load_scenario(scenario, ["hardware.gpu.gemm_efficiency=0.9"]).hardware.gpu.gemm_efficiency == 0.9
    profile.write_text("by_model:\n  ds27b: {hardware: {gpu: {gemm_efficiency: 7}}}\n")
    with pytest.raises(ScenarioError, match=r"profile.yaml: hardware.gpu.gemm_efficiency = 7"):
        load_scenario(scenario)
    profile.write_text("by_model:\n  gpt5: {hardware: {gpu: {gemm_efficiency: 0.5}}}\n")
    with pytest.raises(ScenarioError, match=r"profile.yaml: by_model.gpt5: unknown model"):
        load_scenario(scenario)


def test_profiles_merge_over_the_scenario_and_under_set(tmp_path):
    profile = tmp_path / "testbed.yaml"
    profile.write_text("hardware: {storage: {read_efficiency: 0.4}}\n"
                       "by_model:\n  ds27b: {hardware: {gpu: {gemm_efficiency: 0.3}}}\n")
    quick = "scenarios/quickstart.yaml"
    plain = load_scenario(quick)
    with_profile = load_scenario(quick, [], [profile])
    assert plain.hardware.storage.read_efficiency != 0.4
    assert with_profile.hardware.storage.read_efficiency == 0.4
    assert with_profile.hardware.gpu.gemm_efficiency == (0.3 if plain.model.name == "ds27b" else plain.hardware.gpu.gemm_efficiency)
    assert load_scenario(quick, ["hardware.storage.read_efficiency=0.5"], [profile]).hardware.storage.read_efficiency == 0.5
    with pytest.raises(ScenarioError, match="nope.yaml: file not found"):
        load_scenario(quick, [], [tmp_path / "nope.yaml"])
