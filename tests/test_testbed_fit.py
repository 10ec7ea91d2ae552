"""The testbed fit's search (the fit itself runs full-size simulations: python -m dpsim.testbed_fit)."""

import pytest

from dpsim.reproduce.testbed_fit import secant_fit


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


def test_minimax_fit_balances_the_worst_errors_of_three_points():
    from dpsim.reproduce.testbed_fit import minimax_fit

    # Three "models" whose JCT falls with the shared efficiency x at different rates, plus fixed parts
    # (compute). No x fits all three; the best x makes the largest over- and under-prediction equal.
    models = [(1000.0, 100.0), (800.0, 300.0), (1500.0, 0.0)]
    targets = [2100.0, 1900.0, 2800.0]

    def jcts(x):
        return [a / x + b for a, b in models]

    x, got, trials = minimax_fit(jcts, targets, start=0.86, tolerance=0.002, lo=0.02, hi=1.0)
    logs = [__import__("math").log(j / t) for j, t in zip(got, targets)]
    assert max(logs) == pytest.approx(-min(logs), abs=0.005)
    # The minimax point is no worse than any point on a fine grid.
    worst = max(abs(v) for v in logs)
    grid = [0.3 + i * 0.005 for i in range(140)]
    best_on_grid = min(max(abs(__import__("math").log(j / t)) for j, t in zip(jcts(g), targets)) for g in grid)
    assert worst <= best_on_grid + 0.005
    assert len(trials) <= 8
