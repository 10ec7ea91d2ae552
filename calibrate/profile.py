"""Fit raw samples and write the calibration profile: a YAML fragment of dpsim's ``hardware:``
section plus a free-form ``calibration:`` provenance section, which a scenario pulls in with
``include: [profiles/NAME.yaml]``.

Quantities are unit strings with SI meaning (bytes/s written as MB/s = 1e6 B/s, seconds as us);
the ``calibration`` section also keeps every fitted value as a plain SI float with its 95 %
bootstrap interval, sample counts, goodness of fit and held-out error.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from dpsim.scenario.units import UnitError, parse_bandwidth, parse_time

from .bucket import records_bucket
from .errors import CalibrateError
from .fit import fit_alpha_beta, fit_concurrency, goodput_shortfall, per_message_times
from .samples import FIT_KINDS


def fmt_bw(bps: float) -> str:
    return f"{bps / 1e6:.6g}MB/s"


def fmt_time(s: float) -> str:
    return f"{s * 1e6:.6g}us"


def fit_samples(samples: list[dict], n_boot: int = 300, seed: int = 0) -> dict:
    """Fit every (kind, link, op) group: alpha-beta on depth-1 samples, bandwidth versus
    depth x concurrency on the others; summarise loader and priority runs."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in samples:
        if r.get("kind") in FIT_KINDS and "elapsed_s" in r:
            groups[(r["kind"], r.get("link"), r.get("op"))].append(r)
    links: dict[str, dict] = {}
    for (kind, link, op), recs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        entry: dict = {"kind": kind, "op": op, "samples": len(recs)}
        sizes, times = per_message_times(recs)
        bucket = records_bucket(recs, f"{kind} samples of link {link}")
        if bucket:
            entry["bucket_bytes"] = bucket
        if len(set(sizes.tolist())) >= 3:
            entry["alpha_beta"] = fit_alpha_beta(sizes, times, n_boot=n_boot, seed=seed, bucket_bytes=bucket).to_dict()
        elif len(sizes):
            # one size only: bandwidth from the median, no latency split
            med = float(np.median(np.maximum(sizes - bucket, 1.0) / times))
            entry["bandwidth_only"] = {"beta": med, "n": int(len(sizes)), "size": int(np.median(sizes))}
        conc = [r for r in recs if r.get("depth", 1) > 1 or r.get("concurrency", 1) > 1]
        if conc:
            big = max(r["size"] for r in conc)
            sel = [r for r in recs if r["size"] == big and r.get("count", 1) > 1 or
                   (r["size"] == big and (r.get("depth", 1) > 1 or r.get("concurrency", 1) > 1))]
            xs = [r.get("depth", 1) * r.get("concurrency", 1) for r in sel]
            bw = [r["bytes"] / r["elapsed_s"] for r in sel]
            entry["concurrency"] = fit_concurrency(xs, bw).to_dict()
            entry["concurrency"]["size"] = int(big)
        links[str(link)] = entry
    report: dict = {"links": links}
    loader = [r for r in samples if r.get("kind") == "loader_total"]
    if loader:
        report["loader"] = [{k: r[k] for k in r if k != "kind"} for r in loader]
    kern: dict[str, list[dict]] = defaultdict(list)
    for r in samples:
        if r.get("kind") == "gpu_kernel":
            kern[r["link"]].append(r)
    if kern:
        report["kernels"] = {
            k: {"model": v[0].get("model"), "tokens": v[0]["size"], "hidden": v[0].get("hidden"), "n": len(v),
                "median_s": float(np.median([r["elapsed_s"] for r in v])),
                "median_flop_rate": float(np.median([r["flop_rate"] for r in v])),
                "not_representative": bool(v[0].get("not_representative"))}
            for k, v in kern.items()
        }
    prio = [r for r in samples if r.get("kind") == "priority"]
    if prio:
        report["priority_runs"] = len({r.get("group") for r in prio})
    return report


def latency_text(alpha_s: float, ci_s: list[float]) -> str:
    """The fitted latency and its 95 % interval, saying so where the bound alpha >= 0 clamps it
    (an interval of "0-0" would claim a precision the fit does not have)."""
    lo, hi = ci_s
    if hi <= 0.0:
        return ("latency 0 us (at the fit's bound alpha >= 0 in every bootstrap resample: no interval; the "
                "size sweep cannot tell this latency from zero)")
    if lo <= 0.0:
        return f"latency {alpha_s * 1e6:.1f} us [at most {hi * 1e6:.1f}; the lower end is the bound 0]"
    return f"latency {alpha_s * 1e6:.1f} us [{lo * 1e6:.1f}, {hi * 1e6:.1f}]"


def fit_report_text(report: dict) -> str:
    """What `fit_samples` found, one line per link and fit, as `dpsim-calibrate fit` prints it."""
    lines = []
    for key, f in report.get("links", {}).items():
        ab = f.get("alpha_beta")
        if ab:
            lines.append(
                f"{key}: {latency_text(ab['alpha'], ab['alpha_ci'])}, "
                f"bandwidth {ab['beta'] / 1e6:.2f} MB/s [{ab['beta_ci'][0] / 1e6:.2f}, {ab['beta_ci'][1] / 1e6:.2f}], "
                f"MAPE {ab['mape'] * 100:.1f} %, max APE {ab['max_ape'] * 100:.1f} %, held-out MAPE "
                f"{(ab['holdout_mape'] or 0) * 100:.1f} % (n={ab['n_samples']}, sizes={ab['n_sizes']})"
                + (f", beyond a token bucket of {ab['bucket_bytes']} B" if ab.get("bucket_bytes") else "")
            )
        bo = f.get("bandwidth_only")
        if bo:
            lines.append(f"{key}: bandwidth {bo['beta'] / 1e6:.2f} MB/s at {bo['size']} B (one size: no latency split, n={bo['n']})")
        cf = f.get("concurrency")
        if cf:
            lines.append(f"{key}: plateau {cf['saturation'] / 1e6:.2f} MB/s reached at depth/concurrency {cf['n_saturate']}")
    return "\n".join(lines) or "nothing to fit"


def _meta(samples: list[dict]) -> dict:
    metas = [r for r in samples if r.get("kind") == "meta"]
    if not metas:
        return {}
    keep: dict = {}
    for m in metas:
        for k, v in m.items():
            if k in ("kind", "t"):
                continue
            keep.setdefault(k, set()).add(str(v))
    return {k: sorted(v)[0] if len(v) == 1 else sorted(v) for k, v in keep.items()}


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _ab(entry: dict) -> tuple[float, float] | None:
    if "alpha_beta" in entry:
        return entry["alpha_beta"]["alpha"], entry["alpha_beta"]["beta"]
    if "bandwidth_only" in entry:
        return 0.0, entry["bandwidth_only"]["beta"]
    return None


def shortfall_warnings(report: dict, storage_nic: float | None, compute_nic: float | None, where: str) -> list[str]:
    """One located warning per link fitted far below the line rate given for it (fit.goodput_shortfall)."""
    out = []
    for name, entry in report["links"].items():
        line = storage_nic if name.startswith("storage") else compute_nic if name == "compute" else None
        ab = _ab(entry)
        message = ab and goodput_shortfall(name, ab[1], line, where)
        if message:
            out.append(message)
    return out


def build_profile(report: dict, samples: list[dict], raw_files: list[str] | None = None,
                  storage_nic: float | None = None, compute_nic: float | None = None) -> dict:
    links = report["links"]
    hw: dict = {}
    notes: list[str] = []
    storage_keys = [k for k in links if k.startswith("storage") and _ab(links[k])]
    if storage_keys:
        fits = [_ab(links[k]) for k in storage_keys]
        alpha = float(np.mean([f[0] for f in fits]))
        beta = float(np.mean([f[1] for f in fits]))
        plats = [links[k]["concurrency"] for k in storage_keys if "concurrency" in links[k]]
        if plats:
            plateau = float(np.mean([c["saturation"] for c in plats]))
            size_c = float(np.mean([c["size"] for c in plats]))
            if plateau > 1.05 * beta:
                # one stream does not fill the device: dpsim's model is per-read overhead + size /
                # bandwidth with queue_depth reads in flight, so take the plateau as the bandwidth and
                # fold the difference for one Full Block into the per-read overhead
                alpha = alpha + size_c / beta - size_c / plateau
                notes.append(f"storage bandwidth is the queue-depth plateau ({plateau:.6g} B/s, single stream "
                             f"{beta:.6g} B/s); io_overhead keeps a depth-1 read of {size_c:.0f} B exact")
                beta = plateau
        line = storage_nic or beta
        if storage_nic is None:
            notes.append("no --storage-nic line rate given: storage_nic.bandwidth is the fitted goodput and read_efficiency 1")
        hw["storage_nic"] = {"bandwidth": fmt_bw(line), "count": 1}
        eff = beta / line
        if eff > 1.0:
            notes.append(f"fitted storage goodput exceeds the given line rate by {(eff - 1) * 100:.2f} %: "
                         "read_efficiency clamped to 1")
            eff = 1.0
        hw["storage"] = {"read_efficiency": round(eff, 6), "io_overhead": fmt_time(alpha)}
        qd = [links[k]["concurrency"]["n_saturate"] for k in storage_keys if "concurrency" in links[k]]
        if qd:
            hw["storage"]["queue_depth"] = int(max(qd))
        if len(storage_keys) > 1:
            notes.append(f"storage parameters are the mean over links {storage_keys}")
    if "compute" in links and _ab(links["compute"]):
        alpha, beta = _ab(links["compute"])
        hw["compute_nic"] = {"bandwidth": fmt_bw(beta), "latency": fmt_time(alpha)}
        if compute_nic:
            notes.append(f"compute NIC line rate {compute_nic:.6g} B/s; fitted goodput is {beta / compute_nic:.4f} of it")
    h2d = links.get("h2d")
    if h2d and _ab(h2d):
        alpha, beta = _ab(h2d)
        # dpsim has no H2D bandwidth key: it moves an H2D copy over the GPU's compute NIC loopback
        # (docs/modeling.md), so the fitted bandwidth stays in calibration.links.h2d for comparison
        hw["gpu"] = {"copy_submit_overhead": fmt_time(alpha)}
        notes.append(f"H2D copies fitted at {beta:.6g} B/s (calibration.links.h2d); dpsim moves an H2D over the "
                     "compute NIC loopback, so this is not a hardware key")
        if h2d.get("not_representative") or any(r.get("not_representative") for r in samples if r.get("link") == "h2d"):
            notes.append("gpu figures were measured on CPU: NOT representative of a GPU")
    calib: dict = {
        "tool": "dpsim-calibrate",
        "provenance": _meta(samples),
        "sample_counts": {k: v["samples"] for k, v in links.items()},
        "links": {},
        "notes": notes,
    }
    if raw_files:
        calib["raw_files"] = [{"path": str(p), "sha256_16": _sha(p)} for p in raw_files]
    for k, v in links.items():
        d: dict = {"kind": v["kind"], "op": v["op"], "samples": v["samples"]}
        if "alpha_beta" in v:
            ab = v["alpha_beta"]
            d.update(
                latency_s=ab["alpha"], latency_ci95_s=ab["alpha_ci"], latency_at_bound=ab["alpha_ci"][0] <= 0.0,
                bandwidth_Bps=ab["beta"],
                bandwidth_ci95_Bps=ab["beta_ci"], n_sizes=ab["n_sizes"], mape=ab["mape"], max_ape=ab["max_ape"],
                r2=ab["r2"], holdout_sizes=ab["holdout_sizes"], holdout_mape=ab["holdout_mape"],
                holdout_max_ape=ab["holdout_max_ape"], noisy_sizes=ab["noisy_sizes"],
            )
        if "bandwidth_only" in v:
            d["bandwidth_Bps"] = v["bandwidth_only"]["beta"]
        if v.get("bucket_bytes"):  # the measurement's shaper, not the hardware's: the closure uses it
            d["bucket_bytes"] = v["bucket_bytes"]
        if "concurrency" in v:
            c = v["concurrency"]
            d["concurrency"] = {"size": c["size"], "plateau_Bps": c["saturation"], "n_saturate": c["n_saturate"],
                                "table": c["table"]}
        calib["links"][k] = d
    if "loader" in report:
        calib["loader"] = report["loader"]
    if "kernels" in report:
        calib["kernels"] = report["kernels"]
    if storage_nic:
        calib["storage_nic_line_rate_Bps"] = storage_nic
    if compute_nic:
        calib["compute_nic_line_rate_Bps"] = compute_nic
    warnings = shortfall_warnings(report, storage_nic, compute_nic, ", ".join(map(str, raw_files or [])) or "samples")
    if warnings:
        calib["warnings"] = warnings
    return _plain({"calibration": calib, "hardware": hw})


def _plain(obj):
    """numpy scalars and tuples -> plain YAML-safe Python."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_profile(profile: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "# dpsim calibration profile, written by dpsim-calibrate fit. Include it from a scenario:\n" \
           "#   include: [profiles/" + path.name + "]\n"
    path.write_text(head + yaml.safe_dump(profile, sort_keys=False, width=110))


def load_profile(path: str | Path) -> dict:
    from dpsim.scenario.config import read_yaml

    if not Path(path).is_file():
        raise CalibrateError(f"{path}: profile not found")
    data = read_yaml(Path(path), CalibrateError)
    if not isinstance(data, dict) or "hardware" not in data:
        raise CalibrateError(f"{path} is not a calibration profile (no hardware: section)")
    if not isinstance(data["hardware"], dict):
        raise CalibrateError(f"{path}: hardware: expected a mapping of sections, got {data['hardware']!r}")
    return data


def hardware_values(profile: dict, source: str = "<profile>") -> dict:
    """SI floats of the hardware keys the closure needs (missing ones are None); a located
    CalibrateError (`source`, field, value) for a value that is not a quantity."""
    hw = profile.get("hardware", {})
    sections = {name: hw.get(name, {}) for name in ("storage_nic", "storage", "compute_nic", "gpu")}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise CalibrateError(f"{source}: hardware.{name}: expected a mapping, got {section!r}")
    sn, st, cn, g = (sections[name] for name in ("storage_nic", "storage", "compute_nic", "gpu"))

    def quantity(parse, section: dict, key: str, where: str, default=None):
        if key not in section:
            return default
        try:
            return parse(section[key])
        except UnitError as e:
            raise CalibrateError(f"{source}: hardware.{where}.{key} = {section[key]!r}: {e}") from None

    out: dict = {}
    efficiency = st.get("read_efficiency", 1.0)
    if isinstance(efficiency, bool) or not isinstance(efficiency, (int, float)) or not 0 < efficiency <= 1:
        raise CalibrateError(f"{source}: hardware.storage.read_efficiency = {efficiency!r}: expected a fraction "
                             "in (0, 1]")
    storage_bw = quantity(parse_bandwidth, sn, "bandwidth", "storage_nic")
    out["storage_bw"] = None if storage_bw is None else storage_bw * float(efficiency)
    out["io_overhead"] = quantity(parse_time, st, "io_overhead", "storage", 0.0)
    out["queue_depth"] = st.get("queue_depth")
    out["compute_bw"] = quantity(parse_bandwidth, cn, "bandwidth", "compute_nic")
    out["compute_latency"] = quantity(parse_time, cn, "latency", "compute_nic", 0.0)
    out["h2d_bw"] = quantity(parse_bandwidth, g, "h2d_bandwidth", "gpu")
    out["copy_overhead"] = quantity(parse_time, g, "copy_submit_overhead", "gpu", 0.0)
    return out
