"""The dpsim CLI end to end (in-process)."""

import json

from click.testing import CliRunner

from dpsim.cli.app import main


def test_run_writes_outputs(tmp_path):
    result = CliRunner().invoke(main, ["run", "scenarios/quickstart.yaml", "--set", "workload.agents=8",
                                       "--set", "workload.max_turns=4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("summary.json", "run.json", "turns.parquet", "links.parquet", "storage_nic_utilisation.png",
                 "compute_nic_utilisation.png", "ttft_cdf.png"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("policy", "model", "layout", "agents", "turns", "jct_s", "prompt_tokens_per_s", "gen_tokens_per_s",
                "ttft_s", "ttst_s", "tpot_s", "slo_attainment", "snic_balance_max_over_avg", "bytes_by_path",
                "gpu_busy_fraction"):
        assert key in summary
    assert "wall_s" not in summary and "wall_s" in json.loads((tmp_path / "run.json").read_text())


def test_compare_prints_speedups():
    result = CliRunner().invoke(main, ["compare", "scenarios/quickstart.yaml", "--set", "workload.agents=4",
                                       "--set", "workload.max_turns=3"])
    assert result.exit_code == 0, result.output
    assert "speed-up dualpath vs basic" in result.output and "dualpath / oracle" in result.output


def test_bad_input_exits_nonzero_with_one_line():
    result = CliRunner().invoke(main, ["validate", "scenarios/quickstart.yaml", "--set", "workload.mode=sideways"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "workload.mode = 'sideways'" in result.output


def test_schema_and_validate():
    runner = CliRunner()
    assert '"cluster"' in runner.invoke(main, ["schema"]).output
    assert runner.invoke(main, ["validate", "scenarios/paper/ds660b-2p4d.yaml"]).exit_code == 0


def test_profile_option_applies_and_bad_profile_is_one_line(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("hardware: {storage: {read_efficiency: 0.25}}\n")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(main, ["run", "scenarios/quickstart.yaml", "--profile", str(profile), "--set",
                                  "workload.agents=4", "--set", "workload.max_turns=3", "--out", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    resolved = json.loads((out / "run.json").read_text())["scenario"]
    assert resolved["hardware"]["storage"]["read_efficiency"] == 0.25
    profile.write_text("hardware: {storage: {read_efficiency: -1}}\n")
    bad = runner.invoke(main, ["validate", "scenarios/quickstart.yaml", "--profile", str(profile)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "p.yaml: hardware.storage.read_efficiency = -1" in bad.output


BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def _one_located_line(result, path, command):
    assert result.exit_code == 2, (command, result.output)
    assert "Traceback" not in result.output, command
    assert f"{path}: not a text file" in result.output, (command, result.output)


def test_binary_input_files_are_one_located_line(tmp_path):
    """A binary file where YAML is expected (a scenario, an include, a profile, a sweep, an
    experiment) names the file and says what was expected, in every command that reads one."""
    binary = tmp_path / "picture.yaml"
    binary.write_bytes(BINARY)
    including = tmp_path / "s.yaml"
    including.write_text("include: [picture.yaml]\n")
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "x.yaml").write_bytes(BINARY)
    runner = CliRunner()
    for command in (["run", str(binary), "--no-plots", "--out", str(tmp_path / "o")],
                    ["compare", str(binary)],
                    ["validate", str(binary)],
                    ["sweep", str(binary)],
                    ["validate", "scenarios/quickstart.yaml", "--profile", str(binary)]):
        _one_located_line(runner.invoke(main, command), binary, command)
    _one_located_line(runner.invoke(main, ["validate", str(including)]), binary, "include")
    command = ["reproduce", "--quick", "--list", "--experiments", str(experiments)]
    _one_located_line(runner.invoke(main, command), experiments / "x.yaml", command)



def test_online_compare_of_a_trace_without_arrival_times_is_one_located_line():
    # The Claude Code sample has no arrival times, so online mode needs workload.aps; compare used to
    # let that ScenarioError reach the internal-error fallback (exit 70).
    result = CliRunner().invoke(main, ["compare", "scenarios/quickstart.yaml", "--set",
                                       "workload.trace=traces/native/claude_code_sample.dpsim.jsonl",
                                       "--set", "workload.mode=online", "--set", "workload.agents=2",
                                       "--policies", "basic"])
    assert result.exit_code == 2, result.output
    assert "workload.aps" in result.output and "internal error" not in result.output
