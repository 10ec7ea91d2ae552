"""The testbed fit's search (the fit itself runs full-size simulations: python -m dpsim.testbed_fit)."""

import pytest

from dpsim.testbed_fit import secant_fit


def test_secant_finds_the_parameter_of_a_decreasing_jct():
    calls = []

    def jct(x):
        calls.append(x)
        return 1000.0 / x + 50.0  # compute that scales with x plus a fixed part

    x, got, trials = secant_fit(jct, 300.0, start=1.0, tolerance=0.01, lo=0.01, hi=100.0)
    assert got == pytest.approx(300.0, rel=0.01) and x == pytest.approx(4.0, rel=0.03)
    assert len(trials) == len(calls) <= 6


def test_unreachable_target_stops_at_the_bound_with_the_closest_trial():
    x, got, trials = secant_fit(lambda x: 1000.0 / x, 10.0, start=1.0, tolerance=0.01, lo=0.1, hi=5.0)
    assert x == 5.0 and got == pytest.approx(200.0)
    assert trials[-1][0] == 5.0
