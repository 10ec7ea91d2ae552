"""Input generators and the pass rule of the fuzz suite (tests/test_fuzz.py, issue 20).

The pass rule, per CLI call: exit status 0 with sane output, or a non-zero status with one clean,
located error line (it names the file, the field or the option) and never a traceback, an uncaught
exception, or the CLIs' "internal error" last resort.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dpsim.scenario.config import Scenario

COUNTS: Counter = Counter()  # family -> CLI calls checked (printed by every family test)
RUNNER = CliRunner()

# A scenario small enough that loading it is cheap (no comments to parse, no include).
TINY = {"name": "fuzz", "cluster": {"prefill_nodes": 1, "decode_nodes": 1}, "model": {"name": "ds27b"},
        "workload": {"mal": "32K", "agents": 1, "max_turns": 2}, "run": {"seed": 1}}


def _leaves(model: type[BaseModel], prefix: tuple = ()):
    for name, field in model.model_fields.items():
        if name == "source_path":
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, prefix + (name,))
        else:
            yield ".".join(prefix + (name,))


FIELDS = list(_leaves(Scenario))

# ----------------------------------------------------------------------------------- scalars
UNITS = ["", "Gbps", "Gbit/s", "GB/s", "MB/s", "kB/s", "B/s", "TB/s", "bps", "GiB", "GB", "MB", "kB", "B",
         "TFLOPS", "PFLOP/s", "FLOPS", "s", "ms", "us", "ns", "min", "h", "K", "M", "Ki", "/s", "/min",
         "parsecs", "Gbpss", "%", " Gbps", "µs", "TB"]
SPECIAL = [".inf", "-.inf", ".nan", "nan", "inf", "NaN", "1e400", "-0", "true", "false", "True", "yes", "no",
           "null", "~", "", " ", "[]", "{}", "[1, 2]", "{a: 1}", "'400Gbps'", "0x10", "1_000", "0o7",
           "!!binary aGk=", "&a x", "*a", "'", '"', "[", "{", ": :", "- x", "a: b: c", "1e-300Gbps",
           "1e300h", "1e400Gbps", "400", "400GB/s", "1ns", "100", "1M", "64K", "32K", "50", "-1", "0",
           "1e-300", "99999999999999999999999999", "ds27b", "dualpath", "online", "basic", "round_robin",
           "9" * 5000, "&a [*a]", "[" * 100 + "]" * 100, "!!python/object:os.system x", "<<: {a: 1}"]
NUMBER = st.one_of(st.integers(-10, 10**6), st.integers(-10**40, 10**40),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, 1, -1, 1e-300, 1e300, 0.5, 1e-3, 1e9, 2**63]))


def _number_text(x) -> str:
    return repr(x) if isinstance(x, float) else str(x)


QUANTITY_TEXT = st.builds(lambda n, u: f"{_number_text(n)}{u}", NUMBER, st.sampled_from(UNITS))
VALUE_TEXT = st.one_of(QUANTITY_TEXT, st.sampled_from(SPECIAL), NUMBER.map(_number_text), st.text(max_size=12))
# Values a user might really type, so that many cases get past validation into the deeper code.
PLAUSIBLE_TEXT = st.one_of(
    st.builds(lambda m, u: f"{m:.3g}{u}", st.floats(0.01, 1000), st.sampled_from(UNITS[:28])),
    st.integers(0, 100).map(str),
    st.sampled_from(["ds27b", "ds660b", "qwen32b", "dualpath", "basic", "oracle", "online", "offline",
                     "round_robin", "true", "false", "32K", "48K", "64K", "0.5", "0.9", "1.05", "400Gbps",
                     "50GB/s", "80GB", "300ms", "2us", "990TFLOPS"]))
ANY_TEXT = st.one_of(PLAUSIBLE_TEXT, VALUE_TEXT)


def _scaled(low: float, high: float, units: list[str]):
    return st.builds(lambda x, u: f"{x:.3g}{u}", st.floats(low, high), st.sampled_from(units))


def plausible_for(key: str):
    """A value of the right kind (and unit) for the scenario field `key`, often in range."""
    leaf = key.split(".")[-1]
    if "bandwidth" in leaf:
        return _scaled(0.1, 2000, ["Gbps", "GB/s", "MB/s"])
    if leaf in ("hbm_capacity", "hbm_reserved", "dram_buffer"):
        return _scaled(0.5, 500, ["GB", "GiB", "MB"])
    if leaf.startswith("peak_flops"):
        return _scaled(1, 5000, ["TFLOPS"])
    if leaf in ("prefill_pass_overhead", "decode_step_overhead", "copy_submit_overhead", "latency", "io_overhead",
                "request_latency", "alpha", "beta", "attention_quota", "ttft", "tpot", "max_sim_time", "bin",
                "tool_latency"):
        return _scaled(0.5, 500, ["us", "ms", "s"])
    if leaf in ("count", "queue_depth", "inflight_requests", "block_tokens"):
        return st.integers(1, 256).map(str)
    if leaf in ("layerwise", "dual_path", "isolation", "progress"):
        return st.sampled_from(["true", "false", "null"])
    if leaf == "scheduler":
        return st.sampled_from(["dualpath", "round_robin", "null"])
    if leaf == "system":
        return st.sampled_from(["basic", "dualpath", "oracle"])
    return st.floats(0.001, 2).map(lambda x: f"{x:.3g}")  # efficiencies, shares, scales, z_slack
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, QUANTITY_TEXT, st.sampled_from(SPECIAL), st.text(max_size=8))
YAML_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=6)
BAD_KEYS = st.one_of(st.sampled_from(["", ".", "a..b", "hardware", "hardware.gpu", "hardware.gpu.x.y",
                                      "workload.nope", "nope", " ", "cluster.prefill_nodes.x", "run.seed.", "=",
                                      "calibration.x", "include", "by_model"]),
                     st.text(max_size=12))
SET_KEY = st.one_of(st.sampled_from(FIELDS), BAD_KEYS)


def set_arg(key: str, value: str) -> str:
    return f"{key}={value}"


# ------------------------------------------------------------------------------- the pass rule
def check(result: Result, family: str, hints: list[str], ok=None, ok_codes=(0,)) -> None:
    """Apply the pass rule to one CLI call and count it under `family`."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), (
        f"{family}: uncaught {type(exc).__name__}: {exc}\n{result.output}")
    text = result.output
    assert "Traceback" not in text, f"{family}: traceback\n{text}"
    assert "internal error" not in text, f"{family}: {text}"
    if result.exit_code in ok_codes:
        if ok is not None:
            ok(result)
        COUNTS[f"{family} (accepted)"] += 1
    else:
        lines = [line for line in result.stderr.splitlines()
                 if line.lower().startswith(("error", "dpsim-calibrate:"))]
        assert len(lines) == 1, f"{family}: expected one error line, got\n{result.stderr}"
        assert any(h and h in lines[0] for h in hints), f"{family}: error not located (hints {hints}): {lines[0]}"
        assert "nan" not in lines[0].split(":")[0], lines[0]
    COUNTS[family] += 1


def run_family(family: str, strategy, case, examples: int) -> None:
    """Run `case(example)` on `examples` generated inputs (deterministic: derandomized)."""
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(example):
        case(example)

    before, accepted = COUNTS[family], COUNTS[f"{family} (accepted)"]
    prop()
    print(f"fuzz family {family}: {COUNTS[family] - before} cases, "
          f"{COUNTS[f'{family} (accepted)'] - accepted} of them accepted")


# --------------------------------------------------------------------------------- file helpers
class Files:
    """Unique file names in one folder."""

    def __init__(self, folder: Path):
        self.folder, self.n = folder, 0

    def path(self, suffix: str) -> Path:
        self.n += 1
        return self.folder / f"f{self.n}{suffix}"

    def text(self, text: str, suffix: str) -> Path:
        path = self.path(suffix)
        path.write_text(text, encoding="utf-8")
        return path

    def data(self, data: bytes, suffix: str) -> Path:
        path = self.path(suffix)
        path.write_bytes(data)
        return path


def dump_yaml(obj) -> str:
    return yaml.safe_dump(obj, allow_unicode=True)


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def finite_numbers(obj) -> bool:
    """Every number inside `obj` (a model_dump) is finite."""
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_numbers(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


# ------------------------------------------------------------------------------ record strategies
def mutated(base: dict, paths: list[str]):
    """`base` with 1-3 random leaves replaced by random YAML values, deleted, or added."""
    edit = st.tuples(st.sampled_from(paths + ["cluster", "hardware", "workload", "model", "x.y"]),
                     st.one_of(YAML_VALUE, st.just("<delete>")))

    def apply(edits):
        data = json.loads(json.dumps(base))
        for path, value in edits:
            node, parts = data, path.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            if value == "<delete>":
                node.pop(parts[-1], None)
            else:
                node[parts[-1]] = value
        return data

    return st.lists(edit, min_size=1, max_size=3).map(apply)
