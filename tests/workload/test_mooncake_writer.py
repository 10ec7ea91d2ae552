"""`dpsim trace convert --to mooncake`: a dpsim workload as a Mooncake request trace, read back."""

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dpsim.cli.app import main
from dpsim.workload.readers import load_trace
from dpsim.workload.trajectory import Trajectory, Turn, agentic_turns

ROOT = Path(__file__).resolve().parents[2]


def _convert(src: Path, out: Path):
    result = CliRunner().invoke(main, ["trace", "convert", str(src), "--to", "mooncake", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_sessions_survive_the_round_trip(tmp_path):
    from dpsim.workload.format import write_trajectories
    rng = np.random.default_rng(3)
    trajs = []
    for i in range(4):  # sessions 100 s apart, 2 s of tool time between turns
        appends = [1200] + list(rng.integers(50, 2000, 11))  # the reader chains prompts of >= 2 blocks
        gens = list(rng.integers(20, 600, 12))
        turns = agentic_turns([int(a) for a in appends], [int(g) for g in gens], think_time_s=2.0)
        trajs.append(Trajectory(f"a{i}", turns, 100.0 * i))
    write_trajectories(trajs, tmp_path / "in.jsonl")
    records = _convert(tmp_path / "in.jsonl", tmp_path / "mc.jsonl")
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // 512) for r in records)
    back = load_trace(str(tmp_path / "mc.jsonl")).trajectories
    assert [len(t.turns) for t in back] == [len(t.turns) for t in trajs]
    for original, read in zip(trajs, back):
        assert read.arrival_s == original.arrival_s
        prev_input = 0
        for a, b in zip(original.turns, read.turns):
            assert (b.input_tokens, b.output_tokens) == (a.input_tokens, a.output_tokens)
            # Hits: whole blocks of the previous prompt within the cached prefix.
            assert b.cached_tokens == min(a.cached_tokens // 512, prev_input // 512) * 512
            prev_input = a.input_tokens


def test_a_mooncake_trace_keeps_its_requests_and_times(tmp_path):
    src = ROOT / "traces" / "mooncake" / "conversation_trace.head600.jsonl"
    original = [json.loads(line) for line in src.read_text().splitlines()]
    records = _convert(src, tmp_path / "mc.jsonl")
    key = lambda r: (r["timestamp"], r["input_length"], r["output_length"])  # noqa: E731
    assert sorted(map(key, records)) == sorted(map(key, original))
    assert len(load_trace(str(tmp_path / "mc.jsonl")).trajectories) == len(load_trace(str(src)).trajectories)


def test_mooncake_output_must_be_jsonl(tmp_path):
    from dpsim.workload.format import write_trajectories
    write_trajectories([Trajectory("a", [Turn(600, 0, 5)])], tmp_path / "in.jsonl")
    result = CliRunner().invoke(main, ["trace", "convert", str(tmp_path / "in.jsonl"), "--to", "mooncake",
                                       "-o", str(tmp_path / "out.parquet")])
    assert result.exit_code != 0 and "expected OUT.jsonl" in result.output
