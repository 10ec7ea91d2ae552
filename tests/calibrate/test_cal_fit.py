"""Fitting: recovery of known parameters, CI coverage, bounds, hold-out, breakpoints, concurrency."""

import numpy as np
import pytest

from calibrate.errors import CalibrateError
from calibrate.fit import expected_tcp_goodput, fit_alpha_beta, fit_concurrency, low_priority_share
from calibrate.measure import log_sizes


def synth(alpha, beta, noise, reps=8, seed=0, lo="4KiB", hi="4MiB"):
    rng = np.random.default_rng(seed)
    sizes = np.repeat(log_sizes(lo, hi), reps).astype(float)
    t = (alpha + sizes / beta) * (1 + noise * rng.standard_normal(len(sizes)))
    return sizes, t


@pytest.mark.parametrize("alpha,beta", [(50e-6, 1e9), (2e-3, 5e7), (0.0, 2.5e8)])
def test_recovers_known_parameters(alpha, beta):
    sizes, t = synth(alpha, beta, 0.02, seed=3)
    f = fit_alpha_beta(sizes, t, n_boot=100)
    assert f.beta == pytest.approx(beta, rel=0.02)
    assert f.alpha == pytest.approx(alpha, abs=max(0.05 * alpha, 2e-6))
    assert f.alpha >= 0
    assert f.mape < 0.05 and f.holdout_mape is not None and f.holdout_mape < 0.05
    assert f.n_samples == len(sizes)


def test_confidence_interval_coverage():
    """Over many seeds the 95 % bootstrap CI of beta should contain the truth most of the time."""
    hits = 0
    runs = 40
    for seed in range(runs):
        sizes, t = synth(100e-6, 4e8, 0.05, reps=10, seed=seed)
        f = fit_alpha_beta(sizes, t, n_boot=150, seed=seed)
        hits += f.beta_ci[0] <= 4e8 <= f.beta_ci[1]
    assert hits / runs >= 0.8


def test_alpha_bounded_at_zero():
    # a token bucket's free burst makes small messages faster than a line: OLS alpha would be < 0
    sizes = np.repeat(log_sizes("16KiB", "2MiB"), 4).astype(float)
    t = (sizes - 8192) / 5e7  # a line with a negative intercept
    f = fit_alpha_beta(sizes, t, n_boot=20)
    assert f.alpha == 0.0
    assert f.beta > 0
    # reported as at the bound, never as an interval "0-0"
    from calibrate.profile import latency_text

    assert f.alpha_ci[1] == 0.0
    text = latency_text(f.alpha, list(f.alpha_ci))
    assert "bound" in text and "[0.0, 0.0]" not in text and "no interval" in text
    assert latency_text(0.0, [0.0, 20e-6]) == "latency 0.0 us [at most 20.0; the lower end is the bound 0]"
    assert latency_text(5e-6, [2e-6, 9e-6]) == "latency 5.0 us [2.0, 9.0]"


def test_relative_weighting_keeps_small_sizes_accurate():
    # R^2 alone is not evidence: the fit must also be right at the smallest size
    sizes, t = synth(150e-6, 1e9, 0.01, seed=1)
    f = fit_alpha_beta(sizes, t, n_boot=10)
    small = f.per_size[0]
    assert abs(small["rel_err"]) < 0.05


def test_breakpoint_found_when_protocol_switches():
    sizes = np.repeat(log_sizes("1KiB", "8MiB"), 6).astype(float)
    t = np.where(sizes < 64 * 1024, 5e-6 + sizes / 2e9, 80e-6 + sizes / 1e9)
    f = fit_alpha_beta(sizes, t, n_boot=10, breakpoints=True)
    assert f.breakpoint is not None and 32 * 1024 <= f.breakpoint <= 128 * 1024
    assert f.predict([4 << 20])[0] == pytest.approx(80e-6 + (4 << 20) / 1e9, rel=0.02)


def test_no_breakpoint_on_a_line():
    sizes, t = synth(20e-6, 1e9, 0.01, seed=2)
    assert fit_alpha_beta(sizes, t, n_boot=10, breakpoints=True).breakpoint is None


def test_too_few_sizes_is_an_error():
    with pytest.raises(CalibrateError):
        fit_alpha_beta([4096, 8192], [1e-5, 2e-5])


def test_time_not_growing_with_size_is_an_error():
    with pytest.raises(CalibrateError):
        fit_alpha_beta([1e3, 1e4, 1e5, 1e6], [1e-3, 0.9e-3, 0.8e-3, 0.7e-3], n_boot=5)


def test_bimodal_sizes_flagged():
    sizes, t = synth(1e-4, 1e9, 0.0, reps=8, seed=0)
    t = t.copy()
    big = sizes == sizes.max()
    t[np.where(big)[0][:4]] *= 3
    f = fit_alpha_beta(sizes, t, n_boot=10)
    assert int(sizes.max()) in f.noisy_sizes


def test_concurrency_plateau():
    xs = [1, 1, 2, 2, 4, 4, 8, 8, 16, 16]
    bw = [1e9, 1e9, 1.9e9, 2e9, 3.5e9, 3.6e9, 3.9e9, 4e9, 4e9, 3.95e9]
    c = fit_concurrency(xs, bw)
    assert c.saturation == pytest.approx(3.95e9, rel=0.03)
    assert c.n_saturate == 8
    assert c.scaling[1] == 1.0


def test_goodput_formula_and_share():
    assert expected_tcp_goodput(50e6) == pytest.approx(50e6 * 1448 / 1514)
    assert low_priority_share(1e6, 1.0, 1e8) == pytest.approx(0.01)
