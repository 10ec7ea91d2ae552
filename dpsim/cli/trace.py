"""``dpsim trace``: inspect, convert and generate trajectory traces.

    dpsim trace stats FILE [--json]        sessions, turns, token distributions, hit rate, arrivals
    dpsim trace convert FILE -o OUT        any supported trace -> native JSONL (.jsonl[.gz]) or .parquet
                    [--to mooncake]       ... or a Mooncake request trace (JSONL)
    dpsim trace synth --mal 64K --agents N -o OUT
    dpsim trace head FILE [-n 3]           the first trajectories, turn by turn

Every command detects the input format from the content (``--format`` forces one) and stops with the
file and line of the first malformed record unless ``--skip-bad`` is given, in which case skipped
records are counted on stderr.
"""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from dpsim.scenario.config import MAX_AGENTS
from dpsim.scenario.units import UnitError, parse_count
from dpsim.workload.format import trajectory_to_obj, write_trajectories
from dpsim.workload.mooncake_writer import write_mooncake
from dpsim.workload.readers import FORMATS, TraceError, TraceRead, load_trace
from dpsim.workload.synthetic import generate_trajectories
from dpsim.workload.trajectory import Trajectory
from dpsim.workload.transform import apply_workload_options

PCTS = (10, 50, 90, 99)


def distribution(values) -> dict | None:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return None
    d = {"count": int(a.size), "mean": float(a.mean())}
    for p, v in zip(PCTS, np.percentile(a, PCTS)):
        d[f"p{p}"] = float(v)
    d["max"] = float(a.max())
    return d


def compute_stats(trajs: list[Trajectory]) -> dict:
    """Statistics of a trajectory set (pure; the numbers ``dpsim trace stats`` prints)."""
    turns_per = [len(t.turns) for t in trajs]
    inp, cached, out, new, new_cont, think = [], [], [], [], [], []
    for t in trajs:
        for i, turn in enumerate(t.turns):
            inp.append(turn.input_tokens)
            cached.append(turn.cached_tokens)
            out.append(turn.output_tokens)
            new.append(turn.input_tokens - turn.cached_tokens)
            if i:
                new_cont.append(turn.input_tokens - turn.cached_tokens)
                think.append(turn.think_time_s)
    total_in = int(sum(inp))
    stats: dict = {
        "sessions": len(trajs),
        "turns": len(inp),
        "sessions_multi_turn": sum(1 for n in turns_per if n >= 2),
        "hit_rate": (sum(cached) / total_in) if total_in else 0.0,
        "input_tokens_total": total_in,
        "cached_tokens_total": int(sum(cached)),
        "turns_per_session": distribution(turns_per),
        "context_tokens": distribution(inp),
        "append_tokens": distribution(new),
        "append_tokens_continuation": distribution(new_cont),
        "generated_tokens": distribution(out),
        "think_time_s": distribution(think),
    }
    sub_turns = [int(t.meta.get("subagent_turns", 0) or 0) for t in trajs]
    if any(sub_turns):
        stats["subagents"] = int(sum(int(t.meta.get("subagents", 0) or 0) for t in trajs))
        stats["subagent_turns"] = int(sum(sub_turns))
        stats["turns_per_session_without_subagents"] = distribution(
            [n - s for n, s in zip(turns_per, sub_turns)])
    arrivals = sorted(t.arrival_s for t in trajs if t.arrival_s is not None)
    arr: dict = {"sessions_with_arrival": len(arrivals)}
    if len(arrivals) >= 2:
        span = arrivals[-1] - arrivals[0]
        arr["session_span_s"] = span
        arr["session_rate_per_s"] = len(arrivals) / span if span > 0 else None
    # request arrival times are known for single-turn sessions and readers that record them
    req: list = []
    for t in trajs:
        if t.arrival_s is None:
            req = None
            break
        if "turn_arrival_s" in t.meta:
            req.extend(t.meta["turn_arrival_s"])
        elif len(t.turns) == 1:
            req.append(t.arrival_s)
        else:
            req = None
            break
    if req and len(req) >= 2:
        span = max(req) - min(req)
        arr["requests"] = len(req)
        arr["request_span_s"] = span
        arr["request_rate_per_s"] = len(req) / span if span > 0 else None
    stats["arrivals"] = arr
    return stats


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer() and abs(v) < 100:
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{round(v):,}"


def render_table(stats: dict, title: str = "") -> str:
    lines = []
    if title:
        lines.append(title)
    lines.append(f"sessions            {stats['sessions']:,}  ({stats['sessions_multi_turn']:,} with >= 2 turns)")
    lines.append(f"turns               {stats['turns']:,}")
    if "subagent_turns" in stats:
        lines.append(f"  of which sub-agent {stats['subagent_turns']:,} (in {stats['subagents']:,} sub-agents, spliced inline)")
    lines.append(f"hit rate            {100 * stats['hit_rate']:.1f} % of input tokens cached "
                 f"({stats['cached_tokens_total']:,} / {stats['input_tokens_total']:,})")
    arr = stats["arrivals"]
    if arr.get("session_rate_per_s"):
        lines.append(f"session arrivals    {arr['sessions_with_arrival']:,} over {arr['session_span_s']:,.0f} s "
                     f"= {arr['session_rate_per_s']:.3g} /s")
    elif not arr["sessions_with_arrival"]:
        lines.append("session arrivals    none in the trace (set workload.aps)")
    if arr.get("request_rate_per_s"):
        lines.append(f"request arrivals    {arr['requests']:,} over {arr['request_span_s']:,.0f} s "
                     f"= {arr['request_rate_per_s']:.3g} /s")
    rows = [("turns per session", "turns_per_session"),
            ("  without sub-agents", "turns_per_session_without_subagents"),
            ("context (input) tok", "context_tokens"),
            ("append (new) tok", "append_tokens"),
            ("  turns after 1st", "append_tokens_continuation"),
            ("generated tok", "generated_tokens"),
            ("think time s", "think_time_s")]
    cols = ["mean"] + [f"p{p}" for p in PCTS] + ["max"]
    lines.append("")
    lines.append(f"{'per turn / session':<22}" + "".join(f"{c:>11}" for c in cols))
    for label, key in rows:
        d = stats.get(key)
        if d is None:
            continue
        lines.append(f"{label:<22}" + "".join(f"{_fmt(d[c]):>11}" for c in cols))
    return "\n".join(lines)


def _read(path: str, skip_bad: bool, fmt: str | None, limit: int | None = None) -> TraceRead:
    try:
        result = load_trace(path, skip_bad=skip_bad, format=fmt, limit=limit)
    except TraceError as e:
        raise click.ClickException(str(e)) from None
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} bad records:", err=True)
        for msg in result.skipped[:10]:
            click.echo(f"  {msg}", err=True)
        if len(result.skipped) > 10:
            click.echo(f"  ... and {len(result.skipped) - 10} more", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    return result


def _write(trajs: list[Trajectory], output: str, **header) -> int:
    try:
        return write_trajectories(trajs, output, **header)
    except OSError as e:
        raise click.ClickException(f"{output}: cannot write ({e.strerror or e})") from None


_skip_bad = click.option("--skip-bad", is_flag=True, help="Skip malformed records (counted on stderr) instead of stopping.")
_format = click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                       help="Force a reader instead of detecting the format from the content.")


@click.group("trace")
def trace() -> None:
    """Inspect, convert and generate agentic trajectory traces."""


@trace.command("stats")
@click.argument("file", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@_skip_bad
@_format
def stats_cmd(file: str, as_json: bool, skip_bad: bool, fmt: str | None) -> None:
    """Sessions, turns per session, token distributions, hit rate and arrival rate of FILE."""
    result = _read(file, skip_bad, fmt)
    stats = compute_stats(result.trajectories)
    stats = {"file": file, "format": result.format, "skipped": len(result.skipped), "notes": result.notes, **stats}
    if as_json:
        click.echo(json.dumps(stats, indent=2))
    else:
        click.echo(render_table(stats, f"{file}  [{result.format}]"
                                + (f"  ({len(result.skipped)} bad records skipped)" if result.skipped else "")))


@trace.command("convert")
@click.argument("file", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="OUT.jsonl, OUT.jsonl.gz or OUT.parquet.")
@click.option("--agents", type=click.IntRange(1, MAX_AGENTS), default=None, help="Resample / trim to this many sessions.")
@click.option("--aps", type=click.FloatRange(0, 1e6, min_open=True), default=None,
              help="Re-draw session arrivals as Poisson at this rate (1/s).")
@click.option("--time-scale", type=click.FloatRange(1e-6, 1e6), default=1.0, show_default=True,
              help="Multiply arrival and think times.")
@click.option("--max-context", type=str, default=None,
              help="Cut each session before its first turn over this many tokens (e.g. 128K).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--to", "to", type=click.Choice(["native", "mooncake"]), default="native", show_default=True,
              help="native: dpsim's format; mooncake: a Mooncake request trace (JSONL, 512-token hash_ids)")
@_skip_bad
@_format
def convert_cmd(file: str, output: str, agents, aps, time_scale, max_context, seed, to, skip_bad: bool, fmt) -> None:
    """Convert FILE (any supported format) to dpsim's native format, or to a Mooncake trace."""
    result = _read(file, skip_bad, fmt)
    trajs = result.trajectories
    if agents is not None or aps is not None or time_scale != 1.0 or max_context is not None:
        try:
            limit = None if max_context is None else int(parse_count(max_context))
        except ValueError as e:  # a UnitError
            raise click.ClickException(f"--max-context {max_context}: {e}; expected a token count, e.g. 128K") from None
        if limit is not None and limit < 1:
            raise click.ClickException(f"--max-context {max_context}: expected a positive token count, e.g. 128K")
        try:
            trajs = apply_workload_options(trajs, agents=agents, aps=aps, time_scale=time_scale, seed=seed,
                                           max_context=limit)
        except ValueError as e:
            raise click.ClickException(f"{file}: {e}") from None
    if to == "mooncake":
        if not output.endswith(".jsonl"):
            raise click.ClickException(f"-o {output}: a Mooncake trace is JSON Lines; expected OUT.jsonl")
        requests, estimated = write_mooncake(trajs, output)
        click.echo(f"wrote {requests:,} requests of {len(trajs):,} sessions to {output} (Mooncake)")
        if estimated:
            click.echo(f"note: {estimated:,} sessions had no turn arrival times; their turns arrive at the "
                       f"session's arrival plus think times (service time left out)", err=True)
        return
    n = _write(trajs, output, source=file, source_format=result.format)
    click.echo(f"wrote {n:,} trajectories ({sum(len(t.turns) for t in trajs):,} turns) to {output}")


@trace.command("synth")
@click.option("--mal", default="64K", show_default=True, help="Maximum context length (tokens, e.g. 32K, 48K, 64K).")
@click.option("--agents", type=click.IntRange(1, MAX_AGENTS), default=500, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(), help="OUT.jsonl, OUT.jsonl.gz or OUT.parquet.")
def synth_cmd(mal: str, agents: int, seed: int, output: str) -> None:
    """Generate synthetic agentic trajectories (docs/architecture.md#paper-workload) in the native format."""
    try:
        mal_tokens = int(parse_count(mal))
        trajs = generate_trajectories(mal_tokens=mal_tokens, agents=agents, seed=seed)
    except (UnitError, ValueError) as e:
        raise click.ClickException(f"--mal {mal}: {e}") from None
    n = _write(trajs, output, source=f"dpsim synth --mal {mal} --agents {agents} --seed {seed}")
    click.echo(f"wrote {n:,} trajectories ({sum(len(t.turns) for t in trajs):,} turns) to {output}")


@trace.command("head")
@click.argument("file", type=click.Path(exists=True))
@click.option("-n", "count", type=click.IntRange(1, MAX_AGENTS), default=3, show_default=True, help="Trajectories to show.")
@click.option("--turns", type=click.IntRange(0), default=8, show_default=True, help="Turns to show per trajectory.")
@click.option("--jsonl", is_flag=True, help="Print native JSON Lines instead of a table.")
@_skip_bad
@_format
def head_cmd(file: str, count: int, turns: int, jsonl: bool, skip_bad: bool, fmt) -> None:
    """The first trajectories of FILE as the simulator will see them."""
    result = _read(file, skip_bad, fmt, limit=count)
    out = sys.stdout
    for traj in result.trajectories:
        if jsonl:
            click.echo(json.dumps(trajectory_to_obj(traj), separators=(",", ":")))
            continue
        arrival = "-" if traj.arrival_s is None else f"{traj.arrival_s:.3f} s"
        click.echo(f"{traj.id}  [{result.format}]  arrival {arrival}  {len(traj.turns)} turns  "
                   f"{traj.total_tokens:,} tokens at the end")
        click.echo(f"  {'turn':>5} {'input':>9} {'cached':>9} {'new':>8} {'output':>7} {'think s':>9}")
        for i, t in enumerate(traj.turns[:turns]):
            click.echo(f"  {i:>5} {t.input_tokens:>9,} {t.cached_tokens:>9,} {t.new_tokens:>8,} "
                       f"{t.output_tokens:>7,} {t.think_time_s:>9.2f}")
        if len(traj.turns) > turns:
            click.echo(f"  ... {len(traj.turns) - turns} more turns")
    out.flush()
