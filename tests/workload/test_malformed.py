"""Bad input: file and line in every error, --skip-bad counts what it skips, nothing silently dropped."""

from __future__ import annotations

import json

import pytest
from helpers import AZURE_CSV, claude_session, mooncake_records, write_lines, write_tar

from dpsim.workload.readers import TraceError, detect_format, load_trace, read_trace


def _mooncake_with_bad_lines(tmp_path):
    recs = mooncake_records()
    lines = [recs[0],
             '{"timestamp": 10, "input_length": 100, "output_length": 3, "hash_ids": [7]',  # line 2: truncated
             recs[1],
             {"timestamp": 20, "input_length": -5, "output_length": 3, "hash_ids": []},  # line 4
             {"timestamp": 30, "input_length": 600, "output_length": 3, "hash_ids": [1, 2, 3]},  # line 5: 3 > ceil(600/512)
             recs[2], recs[3]]
    return write_lines(tmp_path / "bad.jsonl", lines)


def test_mooncake_bad_line_names_file_and_line(tmp_path):
    path = _mooncake_with_bad_lines(tmp_path)
    with pytest.raises(TraceError, match=r"bad\.jsonl:2: invalid JSON"):
        read_trace(path)


def test_mooncake_skip_bad_counts_every_bad_line_and_keeps_the_rest(tmp_path):
    path = _mooncake_with_bad_lines(tmp_path)
    result = load_trace(path, skip_bad=True)
    assert len(result.skipped) == 3
    assert [m.split(": ")[0].rsplit(":", 1)[1] for m in result.skipped] == ["2", "4", "5"]
    assert "'input_length' must be an integer >= 1" in result.skipped[1]
    assert "3 hash_ids for 600 tokens" in result.skipped[2]
    assert sum(len(t.turns) for t in result.trajectories) == 4  # the four good requests
    with pytest.warns(UserWarning, match="skipped 3 bad records"):
        read_trace(path, skip_bad=True)


def test_mooncake_missing_field(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [mooncake_records()[0],
                                              {"timestamp": 1, "input_length": 5, "output_length": 1}])
    with pytest.raises(TraceError, match=r"m\.jsonl:2: missing \['hash_ids'\]"):
        read_trace(path)


def test_azure_bad_rows(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(AZURE_CSV + "2023-11-16 18:17:06.0,abc,3\n2023-11-16 18:17:07.0,5\nnot-a-time,5,5\n")
    with pytest.raises(TraceError, match=r"a\.csv:5: ContextTokens must be an integer, got 'abc'"):
        read_trace(path)
    result = load_trace(path, skip_bad=True)
    assert len(result.trajectories) == 3
    assert [m.split(": ")[0] for m in result.skipped] == [f"{path}:5", f"{path}:6", f"{path}:7"]
    assert "bad TIMESTAMP" in result.skipped[2]


def test_claude_bad_member_names_the_member_and_line(tmp_path):
    bad = json.dumps(claude_session("trace_0002"), indent=1).replace('"in": 300', '"in": 300,,')
    path = write_tar(tmp_path / "t.tar.xz", {"traces/trace_0001.json": json.dumps(claude_session()).encode(),
                                             "traces/trace_0002.json": bad.encode()})
    with pytest.raises(TraceError, match=r"t\.tar\.xz!traces/trace_0002\.json:\d+: invalid JSON"):
        read_trace(path)
    result = load_trace(path, skip_bad=True)
    assert [t.id for t in result.trajectories] == ["trace_0001"]
    assert len(result.skipped) == 1


def test_claude_bad_request_names_the_request(tmp_path):
    s = claude_session()
    s["requests"][2]["requests"][1]["in"] = "many"
    path = write_lines(tmp_path / "s.json", [s])
    with pytest.raises(TraceError, match=r"s\.json: requests\[2\] \(sub-agent\): requests\[1\]: 'in' must be"):
        read_trace(path)


def test_native_bad_turn(tmp_path):
    lines = [{"format": "dpsim-trajectories", "version": 1},
             {"id": "a", "turns": [{"append": 5, "out": 1}]},
             {"id": "b", "turns": [{"append": 5, "out": 0}]},
             {"id": "c", "turns": [{"append": 5, "out": 1, "colour": "red"}]},
             {"id": "d", "turns": [{"in": 5, "cached": 9, "out": 1}]},
             {"id": "e", "turns": []}]
    path = write_lines(tmp_path / "n.jsonl", lines)
    with pytest.raises(TraceError, match=r"n\.jsonl:3: turn 0: 'out' must be >= 1"):
        read_trace(path)
    result = load_trace(path, skip_bad=True)
    assert [t.id for t in result.trajectories] == ["a"]
    assert [m.split(": ")[0] for m in result.skipped] == [f"{path}:{i}" for i in (3, 4, 5, 6)]


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"\n\n   \n", "empty file"),
    (b"hello world\nthis is not a trace\n", "not a recognised trace"),
    (b"a,b,c\n1,2,3\n", "not a recognised trace"),
    (b'{"some": "json"}\n', "not a recognised trace"),
    (b"\x00\x01\x02\xff\xfe binary", "not a recognised trace"),
])
def test_empty_or_non_trace_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "x.dat"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message) as err:
        read_trace(path)
    assert str(path) in str(err.value)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        detect_format(tmp_path / "nope.jsonl")
    with pytest.raises(TraceError, match="without \\*.json"):
        read_trace(tmp_path)


def test_all_records_bad_is_an_error_even_with_skip_bad(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [mooncake_records()[0], "{broken", "{broken"])
    path.write_text(path.read_text().replace(path.read_text().splitlines()[0], '{"timestamp": 0, "input_length": 0, '
                                             '"output_length": 1, "hash_ids": []}'))
    with pytest.raises(TraceError, match=r"no valid trajectories \(3 bad records skipped; first: .*m\.jsonl:1"):
        read_trace(path, skip_bad=True)
