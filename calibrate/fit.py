"""Fitting: latency + size / bandwidth (Hockney alpha-beta) per path and link, with bounds
(alpha >= 0, beta > 0), a token bucket's free bytes (docs/calibration.md#the-token-bucket:
T(m) = alpha + max(0, m - bucket) / beta), relative-error weighting, bootstrap confidence intervals, whole-size
hold-out, an optional breakpoint (piecewise alpha-beta), bandwidth versus concurrency, and the
low-priority share seen under strict priority.

numpy only (no scipy). R^2 is reported but never used as evidence: per-size relative errors,
MAPE, max APE and held-out error are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import CalibrateError


@dataclass
class AlphaBetaFit:
    alpha: float  # s
    beta: float  # bytes/s
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    n_samples: int
    n_sizes: int
    mape: float  # mean |rel err| of per-size medians, all sizes
    max_ape: float
    r2: float
    holdout_sizes: list[int] = field(default_factory=list)
    holdout_mape: float | None = None
    holdout_max_ape: float | None = None
    per_size: list[dict] = field(default_factory=list)
    noisy_sizes: list[int] = field(default_factory=list)  # CV > 25 % or bimodal-looking
    breakpoint: int | None = None
    segments: list[dict] = field(default_factory=list)
    bucket_bytes: int = 0  # the measured link's token bucket: bytes that crossed at once (0: none)
    knee_sizes: list[int] = field(default_factory=list)  # sizes between the bucket and KNEE x it: not fitted

    def predict(self, size) -> np.ndarray:
        size = np.maximum(np.asarray(size, dtype=float) - self.bucket_bytes, 0.0)
        if self.segments:
            out = np.empty_like(size)
            for seg in self.segments:
                mask = (size >= seg["min_size"]) & (size <= seg["max_size"])
                out[mask] = seg["alpha"] + size[mask] / seg["beta"]
            # outside every segment: nearest segment (segments are in bytes beyond the bucket)
            lo, hi = self.segments[0], self.segments[-1]
            out[size < lo["min_size"]] = lo["alpha"] + size[size < lo["min_size"]] / lo["beta"]
            out[size > hi["max_size"]] = hi["alpha"] + size[size > hi["max_size"]] / hi["beta"]
            return out
        return self.alpha + size / self.beta

    def to_dict(self) -> dict:
        d = asdict(self)
        d["alpha_ci"] = list(self.alpha_ci)
        d["beta_ci"] = list(self.beta_ci)
        return d


def _group(sizes, times) -> tuple[np.ndarray, list[np.ndarray]]:
    by: dict[int, list[float]] = defaultdict(list)
    for s, t in zip(sizes, times):
        by[int(s)].append(float(t))
    keys = np.array(sorted(by), dtype=float)
    return keys, [np.asarray(by[int(k)]) for k in keys]


def _solve(m: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted LS of t = a + g m with a >= 0, g > 0 (active-set on a). Returns (alpha, gap/byte)."""
    A = np.column_stack([np.ones_like(m), m]) * w[:, None]
    b = t * w
    (a, g), *_ = np.linalg.lstsq(A, b, rcond=None)
    if a < 0:
        a = 0.0
        mw = m * w
        g = float(mw @ b / (mw @ mw))
    if g <= 0:
        raise CalibrateError("fit gives a non-positive inverse bandwidth: time does not grow with size")
    return float(a), float(g)


def _fit_medians(m: np.ndarray, med: np.ndarray) -> tuple[float, float]:
    # relative-error loss: weight 1/t so every size counts alike (OLS on raw times is dominated by
    # the largest sizes and under-predicts small ones)
    return _solve(m, med, 1.0 / med)


def fit_alpha_beta(
    sizes,
    times,
    *,
    n_boot: int = 300,
    seed: int = 0,
    holdout_every: int = 4,
    breakpoints: bool = False,
    bucket_bytes: int = 0,
) -> AlphaBetaFit:
    """Fit T(m) = alpha + max(0, m - bucket_bytes) / beta to per-message times.

    ``bucket_bytes`` is the token bucket of a shaped link (the test bed's tbf/htb), each message
    sent after the bucket refilled: its first ``bucket_bytes`` cross at once, the rest at the
    rate; sizes within the bucket measure the latency alone, sizes from KNEE x the bucket the
    rate. Sizes in between (the knee, where the bucket's bytes take a sender's time of their own to
    cross) are reported, not fitted. Real NICs have none (0).

    * per-size medians, relative-error weighted least squares, alpha >= 0, beta > 0;
    * bootstrap: resample repetitions within each size, refit, 2.5/97.5 percentiles;
    * hold-out: every ``holdout_every``-th interior size (whole sizes) is left out of a first fit and
      its error reported, then the final parameters are fitted on all sizes;
    * ``breakpoints``: also try one breakpoint (two segments) and keep it when it lowers the
      hold-out error and the BIC.
    """
    sizes_b, groups = _group(sizes, times)
    if len(sizes_b) < 3:
        raise CalibrateError(f"need at least 3 distinct sizes to fit latency and bandwidth, got {len(sizes_b)}")
    if any(len(g) == 0 for g in groups):
        raise CalibrateError("empty size group")
    if bucket_bytes < 0:
        raise CalibrateError(f"bucket_bytes must be >= 0, got {bucket_bytes}")
    above = int((sizes_b > bucket_bytes).sum())
    if above < 2:
        raise CalibrateError(f"{above} of {len(sizes_b)} sizes exceed the link's token bucket of {bucket_bytes} B: "
                             "a bandwidth needs at least 2 (sweep larger sizes)")
    knee: list[tuple[float, np.ndarray]] = []
    if bucket_bytes:  # leave out the knee: there the bucket's bytes take a time of their own to cross
        keep_size = (sizes_b <= bucket_bytes) | (sizes_b >= KNEE * bucket_bytes)
        knee = [(k, g) for k, g, keep in zip(sizes_b, groups, keep_size) if not keep]
        sizes_b, groups = sizes_b[keep_size], [g for g, keep in zip(groups, keep_size) if keep]
        if int((sizes_b > bucket_bytes).sum()) < 2:
            raise CalibrateError(f"fewer than 2 sizes reach {KNEE:g} x the link's token bucket of {bucket_bytes} B: "
                                 "a bandwidth needs at least 2 (sweep larger sizes)")
    m = np.maximum(sizes_b - bucket_bytes, 0.0)  # bytes that wait for the rate
    med = np.array([np.median(g) for g in groups])
    alpha, gap = _fit_medians(m, med)

    # hold-out of whole sizes (interior: interpolation error)
    hold_idx = list(range(1, len(m) - 1, holdout_every)) if holdout_every and len(m) >= 5 else []
    holdout_mape = holdout_max = None
    if hold_idx:
        keep = np.setdiff1d(np.arange(len(m)), hold_idx)
        a_h, g_h = _fit_medians(m[keep], med[keep])
        pred_h = a_h + m[hold_idx] * g_h
        ape = np.abs(pred_h - med[hold_idx]) / med[hold_idx]
        holdout_mape, holdout_max = float(ape.mean()), float(ape.max())

    # bootstrap
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        bmed = np.array([np.median(g[rng.integers(0, len(g), len(g))]) for g in groups])
        try:
            boots.append(_fit_medians(m, bmed))
        except CalibrateError:
            continue
    if boots:
        arr = np.array(boots)
        a_ci = (float(np.percentile(arr[:, 0], 2.5)), float(np.percentile(arr[:, 0], 97.5)))
        b_all = 1.0 / arr[:, 1]
        b_ci = (float(np.percentile(b_all, 2.5)), float(np.percentile(b_all, 97.5)))
    else:
        a_ci, b_ci = (alpha, alpha), (1 / gap, 1 / gap)

    pred = alpha + m * gap
    rel = (pred - med) / med
    all_t = np.concatenate(groups)
    all_m = np.concatenate([np.full(len(g), k) for k, g in zip(m, groups)])
    ss_res = float(((all_t - (alpha + all_m * gap)) ** 2).sum())
    ss_tot = float(((all_t - all_t.mean()) ** 2).sum()) or 1.0
    per_size, noisy = [], []
    for k, g, p, r in zip(sizes_b, groups, pred, rel):
        cv = float(np.std(g) / np.mean(g)) if len(g) > 1 else 0.0
        per_size.append(
            {"size": int(k), "n": len(g), "median_s": float(np.median(g)), "p99_s": float(np.percentile(g, 99)),
             "predicted_s": float(p), "rel_err": float(r), "cv": cv}
        )
        if cv > 0.25 or _bimodal(g):
            noisy.append(int(k))
    for k, g in knee:  # reported beside the fitted sizes, not fitted
        p = alpha + (k - bucket_bytes) * gap
        per_size.append({"size": int(k), "n": len(g), "median_s": float(np.median(g)),
                         "p99_s": float(np.percentile(g, 99)), "predicted_s": float(p),
                         "rel_err": float((p - np.median(g)) / np.median(g)), "cv": float(np.std(g) / np.mean(g)),
                         "knee": True})
    per_size.sort(key=lambda row: row["size"])

    fit = AlphaBetaFit(
        alpha=alpha, beta=1.0 / gap, alpha_ci=a_ci, beta_ci=b_ci, n_samples=int(len(all_t)), n_sizes=len(m),
        mape=float(np.abs(rel).mean()), max_ape=float(np.abs(rel).max()), r2=1.0 - ss_res / ss_tot,
        holdout_sizes=[int(sizes_b[i]) for i in hold_idx], holdout_mape=holdout_mape, holdout_max_ape=holdout_max,
        per_size=per_size, noisy_sizes=noisy, bucket_bytes=int(bucket_bytes), knee_sizes=[int(k) for k, _ in knee],
    )
    if breakpoints and len(m) >= 6:
        _try_breakpoint(fit, m, med)
    return fit


def _bimodal(g: np.ndarray) -> bool:
    """Crude flag: the gap between the two halves of sorted samples dwarfs the spread in each."""
    if len(g) < 6:
        return False
    s = np.sort(g)
    gaps = np.diff(s)
    i = int(np.argmax(gaps))
    if i < 1 or i > len(s) - 3:
        return False
    spread = max(np.ptp(s[: i + 1]), np.ptp(s[i + 1 :]), 1e-12)
    return gaps[i] > 3 * spread and gaps[i] / np.median(s) > 0.2


def _try_breakpoint(fit: AlphaBetaFit, m: np.ndarray, med: np.ndarray) -> None:
    def sse(mm, tt, a, g):
        return float(((((a + mm * g) - tt) / tt) ** 2).sum())

    n = len(m)
    base = sse(m, med, fit.alpha, 1 / fit.beta)
    best = None
    for b in range(3, n - 2):  # at least 3 sizes per segment
        try:
            a1, g1 = _fit_medians(m[:b], med[:b])
            a2, g2 = _fit_medians(m[b:], med[b:])
        except CalibrateError:
            continue
        s = sse(m[:b], med[:b], a1, g1) + sse(m[b:], med[b:], a2, g2)
        if best is None or s < best[0]:
            best = (s, b, a1, g1, a2, g2)
    if best is None:
        return
    s, b, a1, g1, a2, g2 = best
    # BIC with relative residuals: n ln(SSE/n) + k ln n ; 2 vs 5 parameters (incl. breakpoint)
    bic1 = n * np.log(max(base, 1e-30) / n) + 2 * np.log(n)
    bic2 = n * np.log(max(s, 1e-30) / n) + 5 * np.log(n)
    if bic2 < bic1 - 2:
        fit.breakpoint = int(m[b])
        fit.segments = [
            {"min_size": int(m[0]), "max_size": int(m[b - 1]), "alpha": a1, "beta": 1 / g1},
            {"min_size": int(m[b]), "max_size": int(m[-1]), "alpha": a2, "beta": 1 / g2},
        ]


# ------------------------------------------------------------------------------- concurrency
@dataclass
class ConcurrencyFit:
    table: list[dict]  # concurrency -> median aggregate bandwidth, n
    saturation: float  # bytes/s (plateau)
    n_saturate: int  # smallest concurrency reaching 95 % of the plateau
    scaling: dict  # concurrency -> agg(n)/agg(1)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_concurrency(concurrency, aggregate_bw) -> ConcurrencyFit:
    """Aggregate bandwidth versus number of outstanding requests/streams: the plateau (median of
    the per-concurrency medians within 5 % of the best), where it is reached, and agg(n)/agg(1)."""
    by: dict[int, list[float]] = defaultdict(list)
    for c, b in zip(concurrency, aggregate_bw):
        by[int(c)].append(float(b))
    if not by:
        raise CalibrateError("no concurrency samples")
    keys = sorted(by)
    med = {k: float(np.median(by[k])) for k in keys}
    best = max(med.values())
    plateau = [v for v in med.values() if v >= 0.95 * best]
    sat = float(np.median(plateau))
    n_sat = min(k for k in keys if med[k] >= 0.95 * sat)
    base = med[keys[0]]
    return ConcurrencyFit(
        table=[{"concurrency": k, "bw_median": med[k], "n": len(by[k])} for k in keys],
        saturation=sat,
        n_saturate=int(n_sat),
        scaling={int(k): med[k] / base for k in keys},
    )


# ------------------------------------------------------------------------------------- priority
def low_priority_share(low_bytes_during_high: float, overlap_s: float, capacity: float) -> float:
    """Fraction of a link's capacity that the low class obtained while the high class was busy."""
    if overlap_s <= 0 or capacity <= 0:
        raise CalibrateError("priority share needs a positive overlap and capacity")
    return low_bytes_during_high / (overlap_s * capacity)


# ---------------------------------------------------------------------------- helpers for samples
def per_message_times(samples: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, per-message seconds) from depth-1, concurrency-1 samples."""
    s, t = [], []
    for r in samples:
        if r.get("depth", 1) == 1 and r.get("concurrency", 1) == 1 and "elapsed_s" in r:
            s.append(r["size"])
            t.append(r["elapsed_s"] / max(1, r.get("count", 1)))
    return np.asarray(s, dtype=float), np.asarray(t, dtype=float)


# Sizes between a token bucket and KNEE times it are left out of the fit: at 800 Mbit/s with a
# 400 kB bucket, 512 KiB messages took 1.7-2.9 ms against 1.5 ms for latency + bytes beyond the
# bucket at the rate (the bucket's bytes cross at the sender's speed, not at once), while from
# 1 MiB the excess was a constant 0.2 ms (docs/calibration.md#the-token-bucket).
KNEE = 2.0

# A bulk goodput below this fraction of the line rate is the measurement's limit, not the link's: TCP
# over Ethernet carries 1448/1514 = 0.956 of a tc rate, RDMA ~0.9-0.97 of a NIC's, so 0.85 leaves
# room for protocol overhead and flags the 20-50 % shortfalls of issue 16 (docs/calibration.md#the-token-bucket).
SHORTFALL_OF_LINE_RATE = 0.85


def goodput_shortfall(link: str, fitted_Bps: float, line_rate_Bps: float | None, where: str) -> str | None:
    """A located warning when a link's fitted bulk goodput is far below the line rate it was
    given (None when it is not, or no line rate is known)."""
    if not line_rate_Bps or fitted_Bps >= SHORTFALL_OF_LINE_RATE * line_rate_Bps:
        return None
    return (f"warning: {where}: link {link}: fitted bulk goodput {fitted_Bps / 1e6:.2f} MB/s is "
            f"{fitted_Bps / line_rate_Bps:.2f} of its line rate {line_rate_Bps / 1e6:.2f} MB/s (below "
            f"{SHORTFALL_OF_LINE_RATE:g}): the measurement, not the link, is the likely limit; on a tc test bed a "
            "token bucket smaller than a GSO packet (64 KiB) plus the shaper's wake-up delay on a loaded host, "
            "else a sender short of CPU or one stream too few (docs/calibration.md#the-token-bucket); the profile "
            "keeps the fitted figure")


def expected_tcp_goodput(rate_bytes_per_s: float, mss: int = 1448, overhead: int = 66) -> float:
    """TCP goodput under a tc rate limit that counts L2 bytes: rate x MSS / (MSS + 66)."""
    return rate_bytes_per_s * mss / (mss + overhead)
