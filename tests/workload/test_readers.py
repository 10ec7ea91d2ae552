"""Each reader on a tiny hand-made file whose trajectories are worked out by hand."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import AZURE_CSV, claude_session, mooncake_records, write_lines, write_tar

from dpsim.workload.readers import detect_format, load_trace, read_trace
from dpsim.workload.trajectory import Turn

# ------------------------------------------------------------------------------------- mooncake

def test_mooncake_prefix_chaining_and_block_hits(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", mooncake_records())
    assert detect_format(path) == "mooncake"
    trajs = read_trace(path)
    assert [t.id for t in trajs] == ["s0", "s1"]
    a_cd, b = trajs
    # A, then C (covers A's 2 full blocks), then D (same prompt as A): one session
    assert a_cd.arrival_s == 0.0
    assert a_cd.turns == [
        Turn(1280, 0, 10, 0.0),
        Turn(2000, 1024, 20, 3.0),  # blocks 1, 2 seen: 1024 cached; 2.5 s -> 3.0 s gap from A
        Turn(1280, 1280, 1, 1.0),  # all three blocks seen, the partial last one too: capped at input
    ]
    assert a_cd.meta["lines"] == [1, 3, 4]
    assert a_cd.meta["turn_arrival_s"] == [0.0, 3.0, 4.0]
    # B shares only block 1 (one block is not enough to chain): its own session, 512 tokens hit
    assert b.arrival_s == 0.5
    assert b.turns == [Turn(600, 512, 5, 0.0)]


def test_mooncake_unsorted_timestamps_are_sorted_with_a_note(tmp_path):
    recs = mooncake_records()
    path = write_lines(tmp_path / "m.jsonl", [recs[2], recs[0], recs[1], recs[3]])
    result = load_trace(path)
    assert any("not sorted" in n for n in result.notes)
    assert result.trajectories[0].turns[1] == Turn(2000, 1024, 20, 3.0)


# ---------------------------------------------------------------------------------- claude code

def _check_claude_inline(traj):
    assert traj.id == "trace_0001"
    assert traj.arrival_s is None
    assert traj.turns == [
        Turn(200, 0, 30, 0.0),
        Turn(300, 192, 1, 8.0),  # 3 of 4 blocks seen; out=0 replayed as 1
        Turn(130, 0, 7, 0.0),  # sub-agent, own block ids (shared namespace)
        Turn(140, 128, 9, 3.0),
        Turn(400, 128, 50, 5.0),  # waits t - t_marker = 45 - 40, not the 34 s that included the sub-agent
    ]
    assert traj.meta["subagents"] == 1
    assert traj.meta["subagent_turns"] == 2
    assert traj.meta["subagent_turn_index"] == [2, 3]
    assert traj.meta["subagent_start_index"] == [2]


def test_claude_code_tar_xz_read_in_place(tmp_path):
    s1 = claude_session()
    s2 = claude_session("trace_0002", with_subagent=False)
    path = write_tar(tmp_path / "traces.tar.xz", {"traces/trace_0001.json": json.dumps(s1).encode(),
                                                  "traces/README.txt": b"not a session",
                                                  "traces/trace_0002.json": json.dumps(s2).encode()})
    assert detect_format(path) == "claude_code"
    result = load_trace(path)
    assert [t.id for t in result.trajectories] == ["trace_0001", "trace_0002"]
    _check_claude_inline(result.trajectories[0])
    assert any("out=0" in n for n in result.notes)
    assert result.trajectories[1].turns[-1] == Turn(400, 128, 50, 34.0)
    assert not list(tmp_path.glob("traces/*"))  # nothing unpacked


def test_claude_code_directory_single_file_and_gzip_tar(tmp_path):
    d = tmp_path / "sessions"
    d.mkdir()
    (d / "trace_0001.json").write_text(json.dumps(claude_session(), indent=2))  # pretty-printed
    assert detect_format(d) == "claude_code"
    _check_claude_inline(read_trace(d)[0])
    assert detect_format(d / "trace_0001.json") == "claude_code"
    _check_claude_inline(read_trace(d / "trace_0001.json")[0])
    tgz = write_tar(tmp_path / "t.tar.gz", {"trace_0001.json": json.dumps(claude_session()).encode()}, "w:gz")
    _check_claude_inline(read_trace(tgz)[0])


def test_claude_code_subagents_dropped(tmp_path):
    path = write_lines(tmp_path / "s.json", [claude_session()])
    (traj,) = read_trace(path, subagents="drop")
    assert [t.input_tokens for t in traj.turns] == [200, 300, 400]
    assert traj.turns[-1].think_time_s == 34.0
    assert traj.meta["subagent_turns"] == 0


def test_claude_code_missing_think_time_derived_from_t_and_api_time(tmp_path):
    s = claude_session(with_subagent=False)
    del s["requests"][1]["think_time"]  # t=10, previous call t=0 with api_time 2 -> 8 s
    result = load_trace(write_lines(tmp_path / "s.json", [s]))
    assert result.trajectories[0].turns[1].think_time_s == 8.0
    assert any("without think_time" in n for n in result.notes)


# ---------------------------------------------------------------------------------------- azure

def test_azure_csv(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(AZURE_CSV)
    assert detect_format(path) == "azure"
    trajs = read_trace(path)
    assert [t.turns for t in trajs] == [[Turn(4808, 0, 10)], [Turn(3180, 0, 8)], [Turn(110, 0, 27)]]
    assert [t.arrival_s for t in trajs] == pytest.approx([0.0, 0.052, 2.0])


# --------------------------------------------------------------------------------------- native

def test_native_jsonl_plain_and_gzip(tmp_path):
    lines = [{"format": "dpsim-trajectories", "version": 1, "block_size": 4},
             {"id": "a", "arrival_s": 1.5, "turns": [{"append": 10, "out": 2}, {"append": 3, "out": 1, "think_s": 0.5}]},
             {"id": "b", "turns": [{"in": 9, "hashes": [7, 8, 9], "out": 1},
                                   {"in": 12, "hashes": [7, 8, 5], "out": 1}]}]
    path = write_lines(tmp_path / "n.jsonl", lines)
    gz = tmp_path / "n.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, gz):
        assert detect_format(p) == "native"
        a, b = read_trace(p)
        assert (a.id, a.arrival_s) == ("a", 1.5)
        assert a.turns == [Turn(10, 0, 2), Turn(15, 12, 1, 0.5)]
        assert b.arrival_s is None
        assert b.turns == [Turn(9, 0, 1), Turn(12, 8, 1)]  # 2 leading blocks of 4 tokens seen


def test_committed_samples_are_readable():
    from pathlib import Path

    root = Path(__file__).parents[2] / "traces"
    expected = {"mooncake": "mooncake", "claude-code": "claude_code", "azure": "azure", "native": "native"}
    found = 0
    for folder, fmt in expected.items():
        for f in sorted((root / folder).glob("*")):
            if f.name in ("SOURCE.md", "LICENSE") or f.is_dir():
                continue
            assert f.stat().st_size <= 210_000, f"{f} is over the ~200 KB sample budget"
            assert detect_format(f) == fmt, f
            assert read_trace(f), f
            found += 1
    assert found >= 4
