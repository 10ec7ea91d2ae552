"""Property-based fuzz of every input edge (issue 20): scenario fields, --set, scenario files,
includes, tiny runs, every trace format, raw bytes, calibrate raw samples, profiles and options, and
sweep files. Each family feeds generated inputs through the CLIs in-process (click's CliRunner) and
applies the pass rule of tests/fuzz_inputs.py: exit 0 with sane output, or one clean located error
line; never a traceback, an uncaught exception, nonsense accepted, or a hang.

The default run checks well over 1,000 CLI calls (the counts per family are printed: run with -s);
`-m slow` runs every family with 10x the examples. Hypothesis is derandomized: the same cases every
run.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fuzz_inputs import (
    ANY_TEXT,
    COUNTS,
    FIELDS,
    PLAUSIBLE_TEXT,
    RUNNER,
    SCALAR,
    SET_KEY,
    TINY,
    VALUE_TEXT,
    YAML_VALUE,
    Files,
    check,
    dump_yaml,
    finite_numbers,
    jsonl,
    mutated,
    plausible_for,
    run_family,
    set_arg,
)
from hypothesis import strategies as st

from calibrate.cli import main as calibrate_main
from dpsim.api import load_scenario
from dpsim.cli.app import main
from dpsim.planning.sweep import SweepError, load_sweep
from dpsim.workload.format import write_parquet
from dpsim.workload.trajectory import Trajectory, Turn

REPO = Path(__file__).resolve().parent.parent
LOADER_RAW = REPO / "scenarios/profiles/testbed-netns/loader.jsonl"

# default examples per family (x10 under -m slow); the sum of CLI calls is what the 1,000 counts
EXAMPLES = {"set": 250, "scenario_file": 120, "include": 60, "run": 40, "native": 90, "gzip": 30,
            "parquet": 20, "mooncake": 70, "azure": 70, "claude_code": 70, "bytes": 50, "calibrate_raw": 50,
            "calibrate_profile": 50, "options": 90, "sweep": 40}


@pytest.fixture
def files(tmp_path):
    return Files(tmp_path)


def _tiny(files: Files) -> Path:
    return files.text(dump_yaml(TINY), ".yaml")


# --------------------------------------------------------------------------------- scenarios
def fuzz_set(files: Files, n: int) -> None:
    base = _tiny(files)

    def case(kv):
        key, value = kv
        arg = set_arg(key, value) if not key.startswith("<raw>") else key[5:]

        def sane(result):
            assert "ok (" in result.output
            scenario = load_scenario(base, [arg])
            assert finite_numbers(scenario.model_dump())

        leaf = key.strip().split(".")[-1] if key.strip() else key
        check(RUNNER.invoke(main, ["validate", str(base), "--set", arg]), "set", [leaf, "--set", str(base)], sane)

    raw = st.text(max_size=16).map(lambda t: "<raw>" + t)
    plausible = st.sampled_from(FIELDS).flatmap(lambda k: st.tuples(st.just(k), plausible_for(k)))
    run_family("set", st.one_of(plausible, st.tuples(SET_KEY, ANY_TEXT),
                                st.tuples(raw, st.just(""))), case, n)


def fuzz_scenario_file(files: Files, n: int) -> None:
    def case(data):
        path = files.text(dump_yaml(data), ".yaml")
        check(RUNNER.invoke(main, ["validate", str(path)]), "scenario_file", [str(path)],
              lambda r: finite_numbers(load_scenario(path).model_dump()))

    run_family("scenario_file", mutated(TINY, FIELDS), case, n)


def fuzz_include(files: Files, n: int) -> None:
    fragment = st.one_of(st.just({"cluster": {"prefill_nodes": 1, "decode_nodes": 1}}), YAML_VALUE,
                         mutated({"hardware": {"compute_nic": {"bandwidth": "400Gbps"}}}, ["hardware.compute_nic.bandwidth"]))
    target = st.sampled_from(["b", "self", "missing", "dir", "number", "dict", "null", "empty", "list-b-b", "cycle"])

    def case(example):
        kind, content = example
        folder = files.path("")
        folder.mkdir()
        b = folder / "b.yaml"
        b.write_text(dump_yaml(content) if kind != "cycle" else "include: [a.yaml]\n", encoding="utf-8")
        include = {"b": ["b.yaml"], "self": ["a.yaml"], "missing": ["nope.yaml"], "dir": ["."], "number": 5,
                   "dict": [{"x": 1}], "null": [None], "empty": "", "list-b-b": ["b.yaml", "b.yaml"],
                   "cycle": ["b.yaml"]}[kind]
        a = folder / "a.yaml"
        a.write_text(dump_yaml({**TINY, "include": include}), encoding="utf-8")
        check(RUNNER.invoke(main, ["validate", str(a)]), "include", [str(folder)], lambda r: "ok (" in r.output)

    run_family("include", st.tuples(target, fragment), case, n)


def fuzz_run(files: Files, n: int) -> None:
    base = _tiny(files)
    keys = [f for f in FIELDS if f.startswith(("hardware.", "policy.", "slo.", "run.max_sim_time", "run.bin",
                                               "workload.tool_latency", "workload.gen_scale"))]

    def case(example):
        key, value, turns = example
        out = files.path("")

        def sane(result):
            summary = json.loads((out / "summary.json").read_text())
            assert summary["turns"] > 0 and finite_numbers(summary), summary

        args = ["run", str(base), "--no-plots", "--out", str(out), "--set", f"workload.max_turns={turns}",
                "--set", set_arg(key, value)]
        check(RUNNER.invoke(main, args), "run", [key.split(".")[-1], str(base), "time guard"], sane)

    key_value = st.sampled_from(keys).flatmap(lambda k: st.tuples(st.just(k), st.one_of(
        plausible_for(k), plausible_for(k), plausible_for(k), VALUE_TEXT)))
    run_family("run", st.builds(lambda kv, turns: (*kv, turns), key_value, st.integers(1, 3)),
               case, n)


# ------------------------------------------------------------------------------------ traces
def _stats(family: str, path: Path, skip_bad: bool, fmt: str | None) -> None:
    args = ["trace", "stats", str(path)] + (["--skip-bad"] if skip_bad else []) + (["--format", fmt] if fmt else [])
    check(RUNNER.invoke(main, args), family, [str(path)], lambda r: "sessions" in r.output)


TRACE_OPTIONS = st.tuples(st.booleans(), st.one_of(st.none(), st.sampled_from(["native", "mooncake", "claude_code",
                                                                               "azure"])))
GARBAGE_LINE = st.one_of(st.text(max_size=20), st.sampled_from(["[" * 5000, "{" * 3000, "NaN", "[1, Infinity]",
                                                                 '{"a": 1e400}', "\ufeff{}", "null"]))


def _lines(objects) -> st.SearchStrategy:
    """JSON lines of `objects`, with now and then a garbage line in between."""
    line = st.one_of(objects.map(json.dumps), GARBAGE_LINE)
    return st.lists(line, max_size=4).map(lambda ls: "".join(x + "\n" for x in ls))


TURN_A, TURN_I = {"append": 100, "out": 10}, {"in": 300, "cached": 110, "out": 5, "think_s": 1.0, "hashes": [1, 2]}
TURNS = st.lists(st.one_of(st.just(TURN_A), st.just(TURN_I), mutated(TURN_A, list(TURN_A)),
                           mutated(TURN_I, list(TURN_I)), YAML_VALUE), max_size=3)
TRAJECTORY = st.one_of(TURNS.map(lambda t: {"id": "a", "arrival_s": 0.0, "turns": t}),
                       mutated({"id": "a", "arrival_s": 0.0, "meta": {}, "turns": [TURN_A]},
                               ["id", "arrival_s", "meta", "turns"]))
HEADER = st.one_of(st.just({"format": "dpsim-trajectories", "version": 1, "block_size": 64}),
                   mutated({"format": "dpsim-trajectories", "version": 1, "block_size": 64, "hash_scope": "global"},
                           ["format", "version", "block_size", "hash_scope"]))
NATIVE_TEXT = st.builds(lambda h, body: json.dumps(h) + "\n" + body, HEADER, _lines(TRAJECTORY))


def fuzz_native(files: Files, n: int) -> None:
    run_family("native", st.tuples(NATIVE_TEXT, TRACE_OPTIONS),
               lambda e: _stats("native", files.text(e[0], ".jsonl"), *e[1]), n)


def fuzz_gzip(files: Files, n: int) -> None:
    def case(example):
        text, cut, flip = example
        data = gzip.compress(text.encode())
        if cut is not None:
            data = data[: max(2, int(len(data) * cut))]
        if flip is not None:
            i = int(flip * (len(data) - 1))
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        _stats("gzip", files.data(data, ".jsonl.gz"), False, None)

    maybe = st.one_of(st.none(), st.floats(0, 1))
    run_family("gzip", st.tuples(NATIVE_TEXT, maybe, maybe), case, n)


def fuzz_parquet(files: Files, n: int) -> None:
    def case(example):
        turns, flip, cut = example
        path = files.path(".parquet")
        write_parquet([Trajectory("a", [Turn(t[0], min(t[1], t[0]), t[2], 0.0) for t in turns])], path)
        data = path.read_bytes()
        if flip is not None:
            i = int(flip * (len(data) - 1))
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if cut is not None:
            data = data[: max(4, int(len(data) * cut))]
        path.write_bytes(data)
        _stats("parquet", path, False, None)

    turn = st.tuples(st.integers(1, 10**6), st.integers(0, 10**6), st.integers(1, 1000))
    maybe = st.one_of(st.none(), st.floats(0, 1))
    run_family("parquet", st.tuples(st.lists(turn, min_size=1, max_size=3), maybe, maybe), case, n)


MOONCAKE = {"timestamp": 0, "input_length": 1024, "output_length": 10, "hash_ids": [1, 2]}
AZURE_HEAD = st.sampled_from(["TIMESTAMP,ContextTokens,GeneratedTokens", "timestamp,contexttokens,generatedtokens",
                              "TIMESTAMP,ContextTokens", "a,b,c", ""])
AZURE_GOOD_ROW = st.builds(lambda t, c, g: f"{t},{c},{g}", st.sampled_from(["2023-11-16 18:15:46.6805900", "0.5", "12"]),
                           st.integers(1, 10**5), st.integers(0, 1000))
AZURE_BAD_ROW = st.lists(st.one_of(VALUE_TEXT, st.sampled_from(["2023-11-16 18:15:46.6805900", "0.5", "9999-99-99"])),
                     min_size=1, max_size=4).map(lambda cells: ",".join(c.replace("\n", " ") for c in cells))
SESSION = mutated({"id": "s", "block_size": 64, "requests": [
    {"t": 0, "type": "n", "in": 100, "out": 10, "hash_ids": [1], "think_time": 0.5},
    {"type": "subagent", "t": 1, "requests": [{"t": 1, "in": 50, "out": 5, "hash_ids": []}]}]},
    ["id", "block_size", "requests", "hash_id_scope"])


def fuzz_mooncake(files: Files, n: int) -> None:
    objects = st.one_of(st.just(MOONCAKE), mutated(MOONCAKE, list(MOONCAKE)))
    run_family("mooncake", st.tuples(_lines(objects).map(lambda t: json.dumps(MOONCAKE) + "\n" + t), TRACE_OPTIONS),
               lambda e: _stats("mooncake", files.text(e[0], ".jsonl"), *e[1]), n)


def fuzz_azure(files: Files, n: int) -> None:
    rows = st.lists(st.one_of(AZURE_GOOD_ROW, AZURE_GOOD_ROW, AZURE_BAD_ROW), max_size=4)
    text = st.builds(lambda h, rows: h + "\n" + "\n".join(rows) + "\n", AZURE_HEAD, rows)
    run_family("azure", st.tuples(text, TRACE_OPTIONS), lambda e: _stats("azure", files.text(e[0], ".csv"), *e[1]), n)


def fuzz_claude_code(files: Files, n: int) -> None:
    def case(example):
        session, as_dir, opts = example
        path = files.text(json.dumps(session, indent=1), ".json")
        if as_dir:
            folder = files.path("")
            folder.mkdir()
            path.rename(folder / "s.json")
            path = folder
        _stats("claude_code", path, *opts)

    run_family("claude_code", st.tuples(SESSION, st.booleans(), TRACE_OPTIONS), case, n)


def fuzz_bytes(files: Files, n: int) -> None:
    special = st.sampled_from([b"\xff\xfe\x00", b"\x1f\x8b\x08\x00garbage", b"PAR1" + b"\x00" * 20,
                               b'{"format": "dpsim-trajectories", "version": 1}\n\xff\xff\n',
                               b"BZh91AY&SY", b"\xfd7zXZ\x00\x00", b"[" * 200_000, b"\x00" * 100])

    def case(example):
        data, make_dir = example
        if make_dir:
            folder = files.path(".jsonl")
            folder.mkdir()
            _stats("bytes", folder, False, None)
        else:
            _stats("bytes", files.data(data, ".jsonl"), False, None)

    run_family("bytes", st.tuples(st.one_of(st.binary(max_size=64), special), st.booleans()), case, n)


# --------------------------------------------------------------------------------- calibrate
SAMPLE_KINDS = ["transport", "storage", "copy", "gpu", "loader", "experiment", "loader_total", "priority", "meta"]
SAMPLE = st.fixed_dictionaries(
    {"kind": st.one_of(st.sampled_from(SAMPLE_KINDS), SCALAR)},
    optional={"size": st.one_of(st.integers(1, 2**24), SCALAR), "elapsed_s": st.one_of(st.floats(1e-6, 1), SCALAR),
              "count": st.one_of(st.integers(1, 64), SCALAR), "depth": st.one_of(st.integers(1, 16), SCALAR),
              "concurrency": st.one_of(st.integers(1, 4), SCALAR), "bytes": st.one_of(st.integers(0, 2**30), SCALAR),
              "link": SCALAR, "op": st.sampled_from(["read", "write"]), "experiment": SCALAR, "request": SCALAR,
              "path": st.sampled_from(["pe", "de", "x"]), "t_done": st.one_of(st.floats(0, 10), SCALAR),
              "config": YAML_VALUE, "what": st.just("loader"), "group": SCALAR, "flow": SCALAR,
              "priority": SCALAR, "t_start": SCALAR, "flop_rate": SCALAR})


def fuzz_calibrate_raw(files: Files, n: int) -> None:
    def case(example):
        records, garbage = example
        raw = files.text(jsonl(records) + garbage, ".jsonl")
        check(RUNNER.invoke(calibrate_main, ["table", str(raw)]), "calibrate_raw", [str(raw)])
        out = files.path(".yaml")
        check(RUNNER.invoke(calibrate_main, ["fit", str(raw), "-o", str(out), "--boot", "10"]), "calibrate_raw",
              [str(raw)], lambda r: out.is_file())

    run_family("calibrate_raw", st.tuples(st.lists(SAMPLE, max_size=8), st.sampled_from(["", "{bad\n", "[]\n"])),
               case, n)


PROFILE = {"hardware": {"storage_nic": {"bandwidth": "25MB/s"}, "storage": {"read_efficiency": 0.96, "io_overhead": "0us"},
                        "compute_nic": {"bandwidth": "96MB/s", "latency": "0us"}},
           "calibration": {"links": {"host_copy": {"bandwidth_Bps": 1e9, "latency_s": 1e-5}}}}


def _loader_raw(files: Files) -> Path:
    records = [json.loads(line) for line in LOADER_RAW.read_text().splitlines()]
    first = next(r["experiment"] for r in records if r.get("kind") == "experiment")
    keep = [r for r in records if r.get("experiment") == first]
    return files.text(jsonl(keep), ".jsonl")


def fuzz_calibrate_profile(files: Files, n: int) -> None:
    raw = _loader_raw(files)
    leaves = ["hardware.storage_nic.bandwidth", "hardware.storage.read_efficiency", "hardware.storage.io_overhead",
              "hardware.compute_nic.bandwidth", "hardware.compute_nic.latency", "calibration.links.host_copy",
              "calibration.links.host_copy.bandwidth_Bps", "calibration.links", "hardware.gpu"]

    def case(profile):
        path = files.text(dump_yaml(profile), ".yaml")
        check(RUNNER.invoke(calibrate_main, ["check", str(path), "--raw", str(raw)]), "calibrate_profile",
              [str(path)], lambda r: "makespan error" in r.output, ok_codes=(0, 1))

    run_family("calibrate_profile", mutated(PROFILE, leaves), case, n)


def fuzz_options(files: Files, n: int) -> None:
    native = files.text(json.dumps({"format": "dpsim-trajectories", "version": 1}) + "\n"
                        + json.dumps({"id": "a", "arrival_s": 1.0, "turns": [TURN_A, TURN_A]}) + "\n", ".jsonl")
    raw = _loader_raw(files)
    profile = files.text(dump_yaml(PROFILE), ".yaml")
    base = _tiny(files)
    count = st.one_of(st.integers(-3, 6).map(str), st.integers(1, 4).map(str), VALUE_TEXT)
    rate = st.one_of(PLAUSIBLE_TEXT, VALUE_TEXT)
    commands = st.one_of(
        st.tuples(st.just("synth"), st.tuples(st.sampled_from(["32K", "48K", "64K"]) | VALUE_TEXT,
                                              st.integers(-2, 3).map(str) | count, count)),
        st.tuples(st.just("convert"), st.tuples(count, rate, rate, rate)),
        st.tuples(st.just("fit"), st.tuples(rate, rate, rate, st.sampled_from(["10", "20"]) | count)),
        st.tuples(st.just("check"), st.tuples(rate)),
        st.tuples(st.just("compare"), st.tuples(st.sampled_from(["", ",", "basic", " , ", "oracle,x"]) | VALUE_TEXT)))

    def case(example):
        command, values = example
        out = files.path(".jsonl")
        if command == "synth":
            mal, agents, seed = values
            args, cli = ["trace", "synth", "--mal", mal, "--agents", agents, "--seed", seed, "-o", str(out)], main
        elif command == "convert":
            agents, aps, scale, max_context = values
            args, cli = ["trace", "convert", str(native), "-o", str(out), "--agents", agents, "--aps", aps,
                         "--time-scale", scale, "--max-context", max_context], main
        elif command == "fit":
            nic, lo, hi, boot = values
            args, cli = ["fit", str(raw), "-o", str(out), "--storage-nic", nic, "--min-size", lo, "--max-size", hi,
                         "--boot", boot], calibrate_main
        elif command == "check":
            args, cli = ["check", str(profile), "--raw", str(raw), "--tolerance", values[0]], calibrate_main
        else:
            args, cli = ["compare", str(base), "--policies", values[0], "--set", "workload.max_turns=1"], main
        hints = [a for a in args if a.startswith("--")] + [str(native), str(raw), str(profile), "--mal", "--policies"]
        check(RUNNER.invoke(cli, args), "options", hints, ok_codes=(0, 1) if command == "check" else (0,))

    run_family("options", commands, case, n)


def fuzz_sweep(files: Files, n: int) -> None:
    base = _tiny(files)
    values = st.lists(st.one_of(PLAUSIBLE_TEXT, SCALAR), min_size=0, max_size=3)
    sweep = st.fixed_dictionaries({"base": st.one_of(st.just(str(base)), st.just(str(base)), SCALAR)},
                                  optional={"grid": st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5),
                                                                    values | SCALAR, max_size=2),
                                            "set": st.one_of(st.dictionaries(st.sampled_from(FIELDS), PLAUSIBLE_TEXT | SCALAR, max_size=2),
                                                             st.lists(VALUE_TEXT, max_size=2), SCALAR),
                                            "jobs": st.integers(1, 4) | SCALAR, "name": SCALAR,
                                            "labels": YAML_VALUE})

    def case(data):
        path = files.text(dump_yaml(data), ".yaml")
        try:
            points, _ = load_sweep(path)
        except SweepError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
        else:
            assert all(finite_numbers(load_scenario(p.base, p.set_args()).model_dump()) for p in points)
            COUNTS["sweep (accepted)"] += 1
        COUNTS["sweep"] += 1

    run_family("sweep", sweep, case, n)


FAMILIES = {"set": fuzz_set, "scenario_file": fuzz_scenario_file, "include": fuzz_include, "run": fuzz_run,
            "native": fuzz_native, "gzip": fuzz_gzip, "parquet": fuzz_parquet, "mooncake": fuzz_mooncake,
            "azure": fuzz_azure, "claude_code": fuzz_claude_code, "bytes": fuzz_bytes,
            "calibrate_raw": fuzz_calibrate_raw, "calibrate_profile": fuzz_calibrate_profile,
            "options": fuzz_options, "sweep": fuzz_sweep}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz(family, files):
    before = COUNTS[family]
    FAMILIES[family](files, EXAMPLES[family])
    assert COUNTS[family] - before >= EXAMPLES[family]  # every example checked (some families check two calls)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz_10x(family, files):
    before = COUNTS[family]
    FAMILIES[family](files, 10 * EXAMPLES[family])
    assert COUNTS[family] - before >= 10 * EXAMPLES[family]
