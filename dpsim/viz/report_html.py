"""Assemble `dpsim report`: tables and figures of each folder (dpsim.viz.report), written as one
self-contained HTML file (figures as base64 PNGs) and a Markdown twin (figures as PNG files beside it)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dpsim.viz import report_plots as rp
from dpsim.viz.report import Source, answer, caveats, load, run_binding
from dpsim.viz.tables import SUMMARY_ROWS, fmt


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)  # provenance, one line each
    answer: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


def _summary_frame(runs: dict) -> pd.DataFrame:
    rows = {label: [fmt(get(r.summary)) for _, get in SUMMARY_ROWS] for label, r in runs.items()}
    frame = pd.DataFrame(rows, index=[label for label, _ in SUMMARY_ROWS])
    if all("cost" in r.summary for r in runs.values()):
        for key in ("gpu_hours", "usd_per_million_tokens", "usd_per_trajectory"):
            frame.loc[f"cost: {key}"] = [fmt(r.summary["cost"][key]) for r in runs.values()]
    frame.loc["binding resource"] = [run_binding(r)[0] for r in runs.values()]
    return frame


def _figure(title: str, draw, *args, **kwargs) -> tuple[str, bytes]:
    """(title, PNG): the title is drawn on the figure and captions it in the report."""
    return title, draw(*args, title=title, **kwargs)


def _run_figures(runs: dict, context: str, slo: dict | None) -> list[tuple[str, bytes]]:
    turns = {k: r.turns for k, r in runs.items()}
    figs = [_figure(f"TTFT CDF — {context}", rp.latency_cdf, turns, "ttft_s", "TTFT (s)", slo_s=(slo or {}).get("ttft")),
            _figure(f"TPOT CDF — {context}", rp.latency_cdf, turns, "tpot_s", "TPOT (ms)",
                    slo_s=(slo or {}).get("tpot"), scale=1e3),
            _figure(f"Utilisation of every resource over time — {context}", rp.utilisation_over_time, runs)]
    if len(runs) > 1:
        figs.append(_figure(f"Job completion time per configuration — {context}", rp.bars,
                            {k: r.summary["jct_s"] for k, r in runs.items()}, None, "JCT (s)"))
    return figs


def section(src: Source) -> Section:
    sec = Section(f"{src.kind}: {src.folder}")
    sc = src.scenario
    if sc is not None:
        sec.lines.append(f"scenario {sc.name} ({sc.source_path or 'path not recorded'}): {src.context}; "
                         f"workload {sc.workload.mode}, {sc.workload.agents or 'all'} agents, MAL "
                         f"{int(sc.workload.mal) // 1024}K; SLO TTFT {sc.slo.ttft:g} s, TPOT {sc.slo.tpot * 1e3:g} ms")
    if src.runs:
        info = next(iter(src.runs.values())).run_info
        versions = info.get("versions") or {"dpsim": info.get("dpsim_version"), "python": info.get("python")}
        sec.lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v))
    sec.answer = answer(src)
    sec.caveats = caveats(src)
    slo = {"ttft": sc.slo.ttft, "tpot": sc.slo.tpot} if sc is not None else None
    if src.runs:
        sec.tables.append(("summary", _summary_frame(src.runs)))
        if src.seeds:
            sec.tables.append(("95 % intervals over seeds (Student t)", _seed_frame(src.seeds)))
        sec.figures += _run_figures(src.runs, src.context, slo)
    elif src.kind == "sweep":
        sec.tables += _sweep_tables(src)
        ok = src.rows[src.rows.status == "ok"]
        if "jct_s" in ok and len(ok):
            varied = [c for c in ok.columns if "." in c and c not in ("base", "run.seed") and ok[c].nunique() > 1]
            labels = [_short(r[varied]) if varied else str(r.get("key")) for _, r in ok.iterrows()]
            sec.figures.append(_figure(f"JCT per sweep point — {src.context}", rp.bars,
                                       dict(zip(labels, ok.jct_s)), None, "JCT (s)"))
    elif src.kind == "capacity":
        sec.tables += _capacity_tables(src)
        caps, errs = _capacities(src)
        sec.figures.append(_figure(f"SLO capacity per system — {src.context}", rp.bars, caps, errs, "capacity (APS)"))
        if src.rows is not None and len(src.rows):
            stat = next((c for c in src.rows.columns if c.startswith("ttft_") and c.endswith("_s")
                         and c not in ("ttft_p50_s", "ttft_p90_s")), "ttft_mean_s")
            sec.figures.append(_figure(f"Capacity trials — {src.context}", rp.capacity_trials, src.rows, stat,
                                       slo["ttft"] if slo else 4.0))
    return sec


def _seed_frame(seeds: dict) -> pd.DataFrame:
    intervals = seeds.get("intervals", {})
    systems = intervals.get("systems", {"run": intervals})
    keys = ["jct_s", "ttft_s_p50", "ttft_s_p90", "tpot_s_p50", "slo_attainment", "prompt_tokens_per_s"]
    return pd.DataFrame({name: [(f"{iv[k]['mean']:.4g} ±{iv[k]['half_width']:.2g}" if iv.get(k, {}).get("half_width")
                                 is not None else "-") for k in keys] for name, iv in systems.items()}, index=keys)


def _short(row) -> str:
    parts = [f"{k.split('.')[-1]}={v}" for k, v in row.items() if "." in str(k) and k != "run.seed"
             and not pd.isna(v) and k not in ("base",)]
    return ", ".join(parts)[:40] or str(row.get("key"))


def _sweep_tables(src: Source) -> list[tuple[str, pd.DataFrame]]:
    rows = src.rows
    cols = [c for c in rows.columns if "." in c and c != "base"] + [c for c in (
        "status", "jct_s", "ttft_s_p90", "tpot_s_p50", "slo_attainment", "cost_usd_per_trajectory") if c in rows]
    out = [("points", rows[cols])]
    if src.seeds:
        ci = src.seeds["table"]
        out.append(("95 % intervals over seeds (Student t)", ci[[c for c in ci.columns if "." in c or c in (
            "seeds_ok", "jct_s_mean", "jct_s_low", "jct_s_high")]]))
    return out


def _capacities(src: Source) -> tuple[dict, dict]:
    caps, errs = {}, {}
    for name, doc in src.capacity.items():
        if isinstance(doc, dict) and "by_seed" in doc:
            caps[name], errs[name] = doc["capacity_aps"]["mean"], doc["capacity_aps"]["half_width"]
        elif isinstance(doc, dict) and "aps" in doc:
            caps[name], errs[name] = doc["aps"], None
    return caps, errs


def _capacity_tables(src: Source) -> list[tuple[str, pd.DataFrame]]:
    caps, errs = _capacities(src)
    table = pd.DataFrame({"capacity (APS)": caps, "95 % half-width": errs})
    binding = {n: d.get("binding") or ", ".join(sorted({s["binding"] for s in d["by_seed"].values()}))
               for n, d in src.capacity.items() if isinstance(d, dict) and n in caps}
    table["binding resource"] = pd.Series(binding)
    out = [("capacity", table)]
    if src.rows is not None:
        keep = [c for c in ("system", "seed", "aps", "meets_slo", "stop_reason", "ttft_mean_s", "tpot_s",
                            "util storage NIC", "util prefill GPU") if c in src.rows]
        out.append(("trials", src.rows[keep]))
    return out


def overlay(sources: list[Source]) -> Section | None:
    """All runs of several folders in the same figures."""
    runs = {f"{s.folder.name}/{k}": r for s in sources for k, r in s.runs.items()}
    if len([s for s in sources if s.runs]) < 2:
        return None
    context = " | ".join(dict.fromkeys(s.context for s in sources if s.runs))
    sec = Section("side by side: every run of the folders above", answer=", ".join(
        f"{k}: JCT {r.summary['jct_s']:.4g} s, TTFT p90 {r.summary['ttft_s']['p90']:.3g} s" for k, r in runs.items()))
    sec.tables.append(("summary", _summary_frame(runs)))
    sec.figures = _run_figures(runs, context, None)
    return sec


# ------------------------------------------------------------------------------------------ write
def build(folders: list[str | Path], out: str | Path) -> tuple[Path, Path]:
    """Write OUT (.html) and its Markdown twin (.md, figures in OUT_figures/); return both paths."""
    sources = [load(f) for f in folders]
    sections = [section(s) for s in sources]
    side = overlay(sources)
    if side:
        sections.append(side)
    out = Path(out).with_suffix(".html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_html(sections))
    md = out.with_suffix(".md")
    md.write_text(_markdown(sections, out.with_name(out.stem + "_figures")))
    return out, md


CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
       "font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
       ".answer{font-size:1.1em;background:#eef4ff;padding:0.6em;border-left:4px solid #4477aa}"
       "img{max-width:100%;display:block;margin:0.8em 0}")


def _html(sections: list[Section]) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>dpsim report</title>",
             f"<style>{CSS}</style></head><body><h1>dpsim report</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += [f"<p>{html.escape(line)}</p>" for line in sec.lines]
        parts.append(f"<p class='answer'>{html.escape(sec.answer)}</p>")
        for name, frame in sec.tables:
            parts.append(f"<h3>{html.escape(name)}</h3>" + frame.to_html(na_rep="-", float_format=lambda x: f"{x:.4g}"))
        for title, png in sec.figures:
            parts.append(f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
                         f"{base64.b64encode(png).decode()}'><figcaption>{html.escape(title)}</figcaption></figure>")
        if sec.caveats:
            parts.append("<h3>caveats</h3><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in sec.caveats) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(frame: pd.DataFrame) -> str:
    cells = lambda values: "| " + " | ".join(str(v).replace("|", "/") for v in values) + " |"  # noqa: E731
    lines = [cells([""] + list(frame.columns)), cells(["---"] * (len(frame.columns) + 1))]
    for index, row in frame.iterrows():
        lines.append(cells([index] + [fmt(v) if isinstance(v, float) else v for v in row]))
    return "\n".join(lines)


def _markdown(sections: list[Section], figures_dir: Path) -> str:
    figures_dir.mkdir(parents=True, exist_ok=True)
    parts, n = ["# dpsim report"], 0
    for sec in sections:
        parts += [f"## {sec.title}", *sec.lines, f"**{sec.answer}**"]
        for name, frame in sec.tables:
            parts += [f"### {name}", _md_table(frame)]
        for title, png in sec.figures:
            n += 1
            path = figures_dir / f"figure-{n}.png"
            path.write_bytes(png)
            parts.append(f"![{title}]({figures_dir.name}/{path.name})")
        if sec.caveats:
            parts += ["### caveats"] + [f"- {c}" for c in sec.caveats]
    return "\n\n".join(parts) + "\n"
