"""Plans, the raw-sample log (append, resume, truncated lines) and perftest-like tables."""

import json

import pytest

from calibrate.errors import CalibrateError
from calibrate.measure import (
    SampleLog,
    format_table,
    log_sizes,
    make_plan,
    parse_size_list,
    read_samples,
    run_plan,
    summarise,
)


def test_log_sizes_not_only_powers_of_two():
    s = log_sizes("4KiB", "4MiB")
    assert s[0] == 4096 and s[-1] == 4 << 20
    assert len(s) == 21
    assert any(x & (x - 1) for x in s)  # 2^(k/2) steps: some are not powers of two
    assert all(b > a for a, b in zip(s, s[1:]))
    assert all(x % 4096 == 0 for x in log_sizes("4KiB", "1MiB", 3, align=4096))


def test_parse_size_list():
    assert parse_size_list("4KiB,1MiB") == [4096, 1 << 20]
    assert len(parse_size_list("1KiB..1MiB/1")) == 11
    with pytest.raises(CalibrateError):
        log_sizes("1MiB", "1KiB")


def test_plan_is_shuffled_reproducibly():
    a = make_plan([1, 2, 3, 4], 5, seed=7)
    b = make_plan([1, 2, 3, 4], 5, seed=7)
    c = make_plan([1, 2, 3, 4], 5, seed=8)
    assert a == b and a != c
    assert len(a) == 20
    assert [p.size for p in a] != sorted(p.size for p in a)


def test_log_appends_and_resume_skips_done(tmp_path):
    raw = tmp_path / "raw.jsonl"
    plan = make_plan([10, 20, 30], 2, seed=1)
    calls = []

    def measure(item):
        calls.append(item)
        if len(calls) == 4:
            raise KeyboardInterrupt  # interrupted mid-run
        return {"elapsed_s": item.size * 1e-6}

    log = SampleLog(raw)
    with pytest.raises(KeyboardInterrupt):
        run_plan(plan, measure, log, "cfg", {"kind": "transport"}, warmup=0)
    log.close()
    assert len(read_samples([raw])) == 3  # written as taken
    with pytest.raises(CalibrateError):
        SampleLog(raw)  # refuses to clobber without --resume
    calls.clear()
    with SampleLog(raw, resume=True) as log2:
        run_plan(plan, lambda i: {"elapsed_s": i.size * 1e-6}, log2, "cfg", {"kind": "transport"}, warmup=0)
    recs = read_samples([raw])
    assert len(recs) == 6
    assert len({(r["size"], r["rep"]) for r in recs}) == 6


def test_truncated_last_line_is_ignored(tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"kind": "x", "size": 1}) + "\n" + '{"kind": "tr')
    assert len(read_samples([raw])) == 1
    raw.write_text('{"bad\n' + json.dumps({"kind": "x"}) + "\n")
    with pytest.raises(CalibrateError):
        read_samples([raw])


def test_summary_columns():
    recs = [{"kind": "transport", "link": "c", "op": "read", "size": 1000, "elapsed_s": t, "count": 10, "bytes": 10000}
            for t in (1e-3, 2e-3)]
    (row,) = summarise(recs)
    assert row["iterations"] == 20
    assert row["bw_peak"] == pytest.approx(1e7)
    assert row["bw_average"] == pytest.approx(20000 / 3e-3)
    assert row["msg_rate"] == pytest.approx(20 / 3e-3)
    assert row["t_p50"] == pytest.approx(1.5e-4)
    text = format_table([row])
    assert "BW peak" in text and "MsgRate" in text
