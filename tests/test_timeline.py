"""`dpsim run --timeline`: a Chrome/Perfetto trace of every request's phases and the links."""

import json
from collections import defaultdict

import pandas as pd
import pytest
from click.testing import CliRunner

from dpsim.cli.app import main


def test_timeline_holds_every_request_phase_and_link_counters(tmp_path):
    result = CliRunner().invoke(main, ["run", "scenarios/quickstart.yaml", "--set", "workload.agents=6", "--set",
                                       "workload.max_turns=3", "--timeline", "--no-plots", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    events = json.loads((tmp_path / "timeline.json").read_text())["traceEvents"]
    turns = pd.read_parquet(tmp_path / "turns.parquet")
    named = {e["pid"] for e in events if e["ph"] == "M"}
    open_, spans = {}, defaultdict(dict)
    for e in events:
        if e["ph"] in "be":
            assert e["pid"] in named
            key = (e["pid"], e["id"], e["name"])
            if e["ph"] == "b":
                open_[key] = e["ts"]
            else:
                spans[e["id"] // 2][e["name"]] = (open_.pop(key), e["ts"])
    assert not open_  # every slice is closed
    assert len(spans) == len(turns)
    for row in turns.itertuples():
        t0, t1 = spans[row.request]["prefill"]
        assert (t0, t1) == pytest.approx((row.t_prefill_start * 1e6, row.t_first_token * 1e6))
        assert spans[row.request]["decode"][1] == pytest.approx(row.t_finish * 1e6)
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert {"P0 snic.rx", "D0 snic.tx", "P0 cnic.tx", "D0 dram"} <= counters
