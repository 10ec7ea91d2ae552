"""A run's latencies in the names and units of `vllm bench serve` and AIPerf, so a simulated answer
can be set beside a measured one (docs/capacity-planning.md "Field conventions" maps the names).

One dpsim turn is one request. Per request (finished turns only):
- TTFT = first token - arrival; E2EL (AIPerf request_latency) = last token - arrival;
- TPOT (vLLM) = AIPerf inter_token_latency = (E2EL - TTFT) / (output tokens - 1), requests with
  more than one output token. dpsim's own `tpot_s` starts at the second token instead:
  (last - second token) / (output tokens - 2);
- ITL (vLLM, per token gap): dpsim does not time single decode tokens, so only the token-weighted
  mean is given, sum(E2EL - TTFT) / sum(output tokens - 1); its percentiles are left out;
- goodput: requests per second meeting both the scenario's SLOs (TTFT <= slo.ttft and TPOT, the vLLM
  definition, <= slo.tpot), over the duration first arrival -> last finish.
All times in ms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERCENTILES = (50, 90, 99)


def per_request(turns: pd.DataFrame) -> pd.DataFrame:
    """ttft_ms, e2el_ms, tpot_ms (vLLM definition), input and output tokens of every finished turn."""
    done = turns.dropna(subset=["t_finish", "t_first_token"])
    out = pd.DataFrame({"ttft_ms": (done.t_first_token - done.t_arrive) * 1e3,
                        "e2el_ms": (done.t_finish - done.t_arrive) * 1e3,
                        "input_tokens": done.input_tokens, "output_tokens": done.output_tokens})
    gen = done.output_tokens - 1
    out["tpot_ms"] = np.where(gen > 0, (done.t_finish - done.t_first_token) * 1e3 / gen.clip(lower=1), np.nan)
    return out


def _duration_s(turns: pd.DataFrame) -> float:
    done = turns.dropna(subset=["t_finish"])
    return float(done.t_finish.max() - turns.t_arrive.min()) if len(done) else 0.0


def _good(req: pd.DataFrame, slo_ttft_s: float, slo_tpot_s: float) -> int:
    return int(((req.ttft_ms <= slo_ttft_s * 1e3) & (req.tpot_ms.fillna(0.0) <= slo_tpot_s * 1e3)).sum())


def vllm_bench_serve(turns: pd.DataFrame, slo_ttft_s: float, slo_tpot_s: float) -> dict:
    """The result keys of `vllm bench serve --save-result` (latencies in ms)."""
    req = per_request(turns)
    duration = _duration_s(turns)
    gaps = (req.tpot_ms * (req.output_tokens - 1)).sum()
    doc = {"duration": duration, "completed": int(len(req)), "total_input_tokens": int(req.input_tokens.sum()),
           "total_output_tokens": int(req.output_tokens.sum()),
           "request_throughput": len(req) / duration if duration else None,
           "request_goodput": _good(req, slo_ttft_s, slo_tpot_s) / duration if duration else None,
           "output_throughput": req.output_tokens.sum() / duration if duration else None,
           "total_token_throughput": (req.input_tokens.sum() + req.output_tokens.sum()) / duration
           if duration else None,
           "mean_itl_ms": float(gaps / (req.output_tokens - 1).clip(lower=0).sum())
           if (req.output_tokens > 1).any() else None}
    for name, column in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2el", "e2el_ms")):
        values = req[column].dropna().to_numpy(float)
        if not len(values):
            continue
        doc[f"mean_{name}_ms"] = float(values.mean())
        doc[f"median_{name}_ms"] = float(np.median(values))
        doc[f"std_{name}_ms"] = float(values.std())
        for p in PERCENTILES:
            doc[f"p{p}_{name}_ms"] = float(np.percentile(values, p))
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in doc.items()}


def _stats(values: np.ndarray, unit: str) -> dict:
    values = values[~np.isnan(values)]
    if not len(values):
        return {"unit": unit}
    out = {"unit": unit, "avg": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
           "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "count": int(len(values))}
    out.update({f"p{p}": float(np.percentile(values, p)) for p in (1, 5, 10, 25, 50, 75, 90, 95, 99)})
    return out


def aiperf_profile(turns: pd.DataFrame, slo_ttft_s: float, slo_tpot_s: float) -> dict:
    """Metric entries shaped like AIPerf's profile_export_aiperf.json ({metric: {unit, avg, p50, ...}})."""
    req = per_request(turns)
    duration = _duration_s(turns)
    rate = lambda n: {"unit": "requests/sec", "avg": n / duration} if duration else {"unit": "requests/sec"}  # noqa: E731
    return {"time_to_first_token": _stats(req.ttft_ms.to_numpy(float), "ms"),
            "inter_token_latency": _stats(req.tpot_ms.to_numpy(float), "ms"),
            "request_latency": _stats(req.e2el_ms.to_numpy(float), "ms"),
            "input_sequence_length": _stats(req.input_tokens.to_numpy(float), "tokens"),
            "output_sequence_length": _stats(req.output_tokens.to_numpy(float), "tokens"),
            "request_throughput": rate(len(req)), "goodput": rate(_good(req, slo_ttft_s, slo_tpot_s)),
            "output_token_throughput": {"unit": "tokens/sec", "avg": float(req.output_tokens.sum()) / duration}
            if duration else {"unit": "tokens/sec"},
            "request_count": {"unit": "requests", "avg": int(len(req))}}
