"""The native format: lossless round trips, the two turn forms, version and key checks."""

from __future__ import annotations

import json

import pytest
from helpers import write_lines

from dpsim.workload.format import (
    FORMAT_NAME,
    TraceError,
    read_jsonl,
    read_parquet,
    trajectory_to_obj,
    write_jsonl,
    write_parquet,
    write_trajectories,
)
from dpsim.workload.readers import read_trace
from dpsim.workload.trajectory import Trajectory, Turn, agentic_turns


def _sample() -> list[Trajectory]:
    return [
        Trajectory("agentic", agentic_turns([100, 20, 30], [5, 6, 7], think_time_s=1.25), 0.5, {"k": [1, 2]}),
        # compaction (context shrinks), a partial hit and a full hit: explicit form
        Trajectory("explicit", [Turn(1000, 0, 10), Turn(400, 128, 3, 2.0), Turn(400, 400, 1, 0.0)], None, {}),
        Trajectory("first-think", [Turn(50, 0, 1, 3.0)], 7.0, {}),
    ]


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz", "t.parquet"])
def test_round_trip_is_lossless(tmp_path, name):
    trajs = _sample()
    path = tmp_path / name
    assert write_trajectories(trajs, path, source="test") == 3
    back = read_trace(path)
    assert [(t.id, t.turns, t.arrival_s, t.meta) for t in back] == [(t.id, t.turns, t.arrival_s, t.meta) for t in trajs]


def test_writer_uses_append_form_for_pure_appends_only():
    agentic, explicit, _ = _sample()
    assert [set(t) for t in trajectory_to_obj(agentic)["turns"]] == [
        {"append", "out"}, {"append", "out", "think_s"}, {"append", "out", "think_s"}]
    objs = trajectory_to_obj(explicit)["turns"]
    assert objs[0] == {"append": 1000, "out": 10}
    assert objs[1] == {"in": 400, "cached": 128, "out": 3, "think_s": 2.0}


def test_header_is_first_and_versioned(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(_sample(), path)
    head = json.loads(path.read_text().splitlines()[0])
    assert head["format"] == FORMAT_NAME and head["version"] == 1


def test_unsupported_version_is_refused(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"format": FORMAT_NAME, "version": 99},
                                               {"id": "a", "turns": [{"append": 1, "out": 1}]}])
    with pytest.raises(TraceError, match=r"t.jsonl:1: .*version 99 is not supported"):
        read_jsonl(path)


def test_missing_header_is_an_error(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"id": "a", "turns": [{"append": 1, "out": 1}]}])
    with pytest.raises(TraceError, match=r"t.jsonl:1: missing the dpsim-trajectories header"):
        read_trace(path)


def test_global_hash_scope_shares_hits_across_trajectories(tmp_path):
    lines = [{"format": FORMAT_NAME, "version": 1, "block_size": 10, "hash_scope": "global"},
             {"id": "a", "turns": [{"in": 30, "hashes": [1, 2, 3], "out": 1}]},
             {"id": "b", "turns": [{"in": 25, "hashes": [1, 2, 9], "out": 1}]}]
    a, b = read_trace(write_lines(tmp_path / "g.jsonl", lines))
    assert b.turns[0].cached_tokens == 20
    lines[0]["hash_scope"] = "trajectory"
    a, b = read_trace(write_lines(tmp_path / "l.jsonl", lines))
    assert b.turns[0].cached_tokens == 0


def test_parquet_without_dpsim_metadata_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(TraceError, match="without dpsim metadata"):
        read_parquet(path)


def test_parquet_bad_row_names_the_row(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    write_parquet(_sample(), path)
    table = pq.read_table(path)
    cols = table.to_pydict()
    cols["cached_tokens"][1] = 10_000  # > input_tokens of row 1
    pq.write_table(pq.read_table(path).from_pydict(cols, schema=table.schema), path)
    with pytest.raises(TraceError, match=r"t.parquet: row 1 \(trajectory agentic\)"):
        read_trace(path)
    from dpsim.workload.readers import load_trace

    result = load_trace(path, skip_bad=True)
    assert [t.id for t in result.trajectories] == ["explicit", "first-think"]
    assert len(result.skipped) == 1
