"""Interrupting `compare` or `capacity` midway loses no finished work, and `--resume` runs only what is missing."""

import json

import pandas as pd
from click.testing import CliRunner

from dpsim import api
from dpsim.cli.app import main
from dpsim.planning import capacity

QUICK = "scenarios/quickstart.yaml"
COMPARE = ["compare", QUICK, "--set", "workload.agents=4", "--set", "workload.max_turns=3", "--no-progress"]
# Storage-bound miniature of tests/test_capacity.py: 4 trials (2, 16, 9, 5.5 APS) of about a second each.
CAPACITY = ["capacity", QUICK, "--set", "workload.max_turns=8", "--set", "hardware.storage_nic.bandwidth=25Gbps",
            "--systems", "basic", "--window", "10s", "--aps-lo", "2", "--aps-hi", "16", "--tolerance", "4", "--quiet"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C at a chosen call: click turns it into "Aborted!" and exit 1, as at a terminal."""


def _counting(monkeypatch, module, name, interrupt_at=None):
    """Replace module.name with a wrapper that records each call and raises on call `interrupt_at`."""
    real, calls = getattr(module, name), []

    def wrapper(scenario, *args, **kwargs):
        calls.append((scenario.policy.system, args[0] if args and isinstance(args[0], float) else None))
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise Interrupted
        return real(scenario, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_compare_resume_runs_only_the_missing_systems(tmp_path, monkeypatch):
    runner = CliRunner()
    full = runner.invoke(main, COMPARE + ["--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output

    out = tmp_path / "cut"
    with monkeypatch.context() as m:
        calls = _counting(m, api, "run", interrupt_at=2)
        cut = runner.invoke(main, COMPARE + ["--out", str(out)])
    assert cut.exit_code == 1 and "Aborted" in cut.output and [c[0] for c in calls] == ["basic", "dualpath"]
    assert (out / "basic" / "summary.json").is_file()  # written as soon as basic finished
    assert not (out / "dualpath" / "summary.json").exists()

    with monkeypatch.context() as m:
        calls = _counting(m, api, "run")
        resumed = runner.invoke(main, COMPARE + ["--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [c[0] for c in calls] == ["dualpath", "oracle"]  # basic was read back, not run again
    assert "basic: finished earlier" in resumed.output
    table = lambda text: text[text.index("quickstart:"):]  # noqa: E731 - the printed comparison
    assert table(resumed.output) == table(full.output)
    for system in ("basic", "dualpath", "oracle"):
        a, b = tmp_path / "full" / system, out / system
        assert json.loads((a / "summary.json").read_text()) == json.loads((b / "summary.json").read_text())
        pd.testing.assert_frame_equal(pd.read_parquet(a / "turns.parquet"), pd.read_parquet(b / "turns.parquet"))


def test_compare_resume_refuses_a_folder_of_another_scenario(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, COMPARE + ["--policies", "basic", "--out", str(tmp_path)]).exit_code == 0
    other = runner.invoke(main, COMPARE + ["--policies", "basic", "--out", str(tmp_path), "--resume",
                                           "--set", "workload.agents=5"])
    assert other.exit_code == 2 and "Traceback" not in other.output
    assert "holds a run of another scenario (workload.agents: 4 there, 5 now)" in other.output


def _without_wall(doc: dict) -> dict:
    for result in doc.values():
        for t in result["trials"]:
            t.pop("wall_s")
    return doc


def test_capacity_resume_runs_only_the_missing_trials(tmp_path, monkeypatch):
    runner = CliRunner()
    with monkeypatch.context() as m:
        calls = _counting(m, capacity, "trial")
        full = runner.invoke(main, CAPACITY + ["--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    all_rates = [aps for _, aps in calls]
    assert len(all_rates) >= 4

    out = tmp_path / "cut"
    with monkeypatch.context() as m:
        calls = _counting(m, capacity, "trial", interrupt_at=3)
        cut = runner.invoke(main, CAPACITY + ["--out", str(out)])
    assert cut.exit_code == 1 and "Aborted" in cut.output
    logged = [json.loads(line)["aps"] for line in (out / "trials.jsonl").read_text().splitlines()]
    assert logged == all_rates[:2]  # each trial was on disk as soon as it finished

    with monkeypatch.context() as m:
        calls = _counting(m, capacity, "trial")
        resumed = runner.invoke(main, CAPACITY + ["--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [aps for _, aps in calls] == all_rates[2:]  # only the missing trials ran
    assert _without_wall(json.loads((out / "capacity.json").read_text())) == \
        _without_wall(json.loads((tmp_path / "full" / "capacity.json").read_text()))
    assert resumed.output.splitlines()[-3:-1] == full.output.splitlines()[-3:-1]  # the same answer printed


def test_capacity_resume_refuses_a_different_search(tmp_path, monkeypatch):
    runner = CliRunner()
    with monkeypatch.context() as m:
        _counting(m, capacity, "trial", interrupt_at=1)  # cut before the first trial: only search.json
        runner.invoke(main, CAPACITY + ["--out", str(tmp_path)])
    assert (tmp_path / "search.json").is_file()
    other = runner.invoke(main, CAPACITY + ["--out", str(tmp_path), "--resume", "--tolerance", "8"])
    assert other.exit_code == 2 and "Traceback" not in other.output
    assert "the interrupted search differs (options.tolerance: 4.0 there, 8.0 now)" in other.output
