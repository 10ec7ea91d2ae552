"""The `trace` click group, exercised through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import claude_session, mooncake_records, write_lines, write_tar

from dpsim.cli.trace import compute_stats, trace
from dpsim.workload.readers import read_trace


def _run(*args):
    return CliRunner().invoke(trace, [str(a) for a in args], catch_exceptions=False)


def test_stats_json_on_a_hand_made_mooncake_file(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", mooncake_records())
    res = _run("stats", path, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["format"] == "mooncake"
    assert (s["sessions"], s["turns"], s["sessions_multi_turn"]) == (2, 4, 1)
    # cached 0 + 512 + 1024 + 1280 over inputs 1280 + 600 + 2000 + 1280
    assert s["hit_rate"] == pytest.approx(2816 / 5160)
    assert s["turns_per_session"]["max"] == 3
    assert s["arrivals"]["requests"] == 4
    assert s["arrivals"]["request_rate_per_s"] == pytest.approx(4 / 4.0)


def test_stats_table_mentions_sub_agents_and_missing_arrivals(tmp_path):
    path = write_tar(tmp_path / "t.tar.xz", {"trace_0001.json": json.dumps(claude_session()).encode()})
    res = _run("stats", path)
    assert res.exit_code == 0, res.output
    assert "[claude_code]" in res.output
    assert "of which sub-agent 2 (in 1 sub-agents" in res.output
    assert "none in the trace" in res.output
    assert "turns per session" in res.output


def test_compute_stats_distributions():
    from dpsim.workload.trajectory import Trajectory, Turn

    trajs = [Trajectory("a", [Turn(10, 0, 1), Turn(20, 11, 2, 4.0)]), Trajectory("b", [Turn(5, 0, 3)])]
    s = compute_stats(trajs)
    assert s["append_tokens"]["mean"] == pytest.approx((10 + 9 + 5) / 3)
    assert s["append_tokens_continuation"]["count"] == 1
    assert s["think_time_s"]["max"] == 4.0
    assert s["arrivals"] == {"sessions_with_arrival": 0}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_convert_then_read_back(tmp_path, suffix):
    src = write_lines(tmp_path / "m.jsonl", mooncake_records())
    out = tmp_path / f"out{suffix}"
    res = _run("convert", src, "-o", out)
    assert res.exit_code == 0, res.output
    assert "wrote 2 trajectories (4 turns)" in res.output
    assert [t.turns for t in read_trace(out)] == [t.turns for t in read_trace(src)]


def test_convert_with_workload_options(tmp_path):
    src = write_lines(tmp_path / "m.jsonl", mooncake_records())
    out = tmp_path / "out.jsonl"
    res = _run("convert", src, "-o", out, "--agents", 5, "--aps", 1.0, "--time-scale", 2)
    assert res.exit_code == 0, res.output
    trajs = read_trace(out)
    assert len(trajs) == 5
    assert trajs[0].turns[1].think_time_s == 6.0  # 3 s gap, doubled


def test_head_table_and_jsonl(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", mooncake_records())
    res = _run("head", path, "-n", 1)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("s0  [mooncake]  arrival 0.000 s  3 turns")
    assert "s1" not in res.output
    res = _run("head", path, "-n", 5, "--jsonl")
    objs = [json.loads(x) for x in res.output.splitlines()]
    assert [o["id"] for o in objs] == ["s0", "s1"]


def test_bad_file_exits_with_file_and_line(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [mooncake_records()[0], "{oops"])
    res = CliRunner().invoke(trace, ["stats", str(path)])
    assert res.exit_code == 1
    assert f"{path}:2: invalid JSON" in res.output
    res = CliRunner().invoke(trace, ["stats", str(path), "--skip-bad", "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["skipped"] == 1
    assert "skipped 1 bad records" in res.stderr


def test_synth_writes_native_file(tmp_path):
    pytest.importorskip("dpsim.workload.synthetic", reason="the synthetic generator is not in this checkout")
    out = tmp_path / "s.jsonl"
    res = _run("synth", "--mal", "32K", "--agents", 3, "--seed", 1, "-o", out)
    assert res.exit_code == 0, res.output
    trajs = read_trace(out)
    assert len(trajs) == 3
    assert max(t.turns[-1].input_tokens for t in trajs) <= 32 * 1024


def test_convert_max_context(tmp_path):
    src = write_lines(tmp_path / "m.jsonl", mooncake_records())
    out = tmp_path / "out.jsonl"
    res = _run("convert", src, "-o", out, "--max-context", "1.5K")  # 1,536 tokens
    assert res.exit_code == 0, res.output
    trajs = read_trace(out)
    assert [[t.input_tokens for t in x.turns] for x in trajs] == [[1280], [600]]
