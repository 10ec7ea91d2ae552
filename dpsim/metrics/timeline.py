"""A run as a Chrome / Perfetto timeline (`dpsim run --timeline`): open OUT/timeline.json in
https://ui.perfetto.dev or chrome://tracing.

Built from the run's frames after the fact (no simulator hook), in microseconds of simulated time:
- one process per engine ("prefill engine N", "decode engine N"): every request's phases as async
  slices (one row per request), from turns.parquet: on its prefill engine "queued" (arrival ->
  dispatch), "KV read" (read start -> end, on the P or D side), "prefill wait" (read end -> prefill
  start) and "prefill" (prefill start -> first token); on its decode engine "KV to decode" (first
  token -> KV at decode) and "decode" (-> last token). Passes are not recorded one by one, so a
  batch shows as the overlapping prefill slices of its requests;
- one process "links": a counter per link kind and node with its utilisation per time bin (storage
  NIC read/write, compute NICs averaged over the node's GPUs, host DRAM), from links.parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PHASES = [("queued", "t_arrive", "t_dispatch", "pe"), ("KV read", "t_read_start", "t_read_end", "pe"),
          ("prefill wait", "t_read_end", "t_prefill_start", "pe"), ("prefill", "t_prefill_start", "t_first_token", "pe"),
          ("KV to decode", "t_first_token", "t_kv_at_decode", "de"), ("decode", "t_kv_at_decode", "t_finish", "de")]
US = 1e6


def chrome_trace(turns: pd.DataFrame, links: pd.DataFrame, label: str = "") -> dict:
    """The Trace Event Format document of a run."""
    events = []
    engines = {"pe": ("prefill engine", 1000), "de": ("decode engine", 2000)}
    for side, (name, base) in engines.items():
        for index in sorted(int(i) for i in turns[side].unique() if i >= 0):
            events.append({"ph": "M", "name": "process_name", "pid": base + index, "args": {"name": f"{name} {index}"}})
    for row in turns.itertuples(index=False):
        for phase, start, end, side in PHASES:
            t0, t1, engine = getattr(row, start), getattr(row, end), getattr(row, side)
            if engine < 0 or pd.isna(t0) or pd.isna(t1) or t1 < t0:
                continue
            pid = engines[side][1] + int(engine)
            # An async id per request and side: the two engines' slices must not share a track.
            common = {"cat": "request", "name": phase, "id": 2 * int(row.request) + (side == "de"), "pid": pid,
                      "tid": 0}
            args = {"trajectory": row.trajectory, "turn": int(row.turn), "input_tokens": int(row.input_tokens),
                    "cached_tokens": int(row.cached_tokens), "read_side": row.read_side}
            events.append({**common, "ph": "b", "ts": t0 * US, "args": args})
            events.append({**common, "ph": "e", "ts": t1 * US})
    events.append({"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "links (utilisation)"}})
    for (kind, node), util in _link_utilisation(links).items():
        for t, value in util.items():
            events.append({"ph": "C", "name": f"{node} {kind}", "pid": 1, "ts": t * US, "args": {"util": value}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"source": "dpsim", "run": label, "time": "simulated"}}


def _link_utilisation(links: pd.DataFrame) -> dict:
    """{(kind, node): Series(utilisation by bin start)}; compute NICs averaged per node and direction."""
    if links.empty:
        return {}
    frame = links.assign(util=(links.bytes_high + links.bytes_low) / (links.capacity_bytes_per_s * links.bin_s),
                         group=links.kind.str.replace(r"^cnic\d+", "cnic", regex=True))
    bin_s = float(links.bin_s.iloc[0])
    bins = pd.Index(sorted(links.t_s.unique()))
    every = pd.Index([round(b * bin_s, 9) for b in range(int(round(bins.max() / bin_s)) + 2)])
    out = {}
    for (kind, node), rows in frame.groupby(["group", "node"]):
        # Bins without traffic are absent from the frame; a counter holds its value, so write the zeros.
        util = rows.groupby("t_s").util.mean()
        util.index = util.index.map(lambda t: round(t, 9))
        out[(kind, node)] = util.reindex(every, fill_value=0.0).round(4)
    return out


def write_timeline(result, path: str | Path) -> Path:
    path = Path(path)
    doc = chrome_trace(result.turns, result.links, result.summary.get("policy", ""))
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path
