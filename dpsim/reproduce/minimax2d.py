"""Two shared parameters fitted to three targets, minimax over the relative errors (fit protocol v3).

The search works on u = (log x1, x2) and the residuals r_i(u) = log(jct_i / target_i). It is a 2-D
secant (Broyden) method: a linear model r(u) ~ r0 + J (u - u0) from the finite-difference sensitivities
of the first steps, its exact Chebyshev (minimax) point as the next trial, clipped to a trust region
and to the bounds, and a rank-one update of J after each trial. With two parameters and three
residuals the minimax point of a linear model has all three errors equal in size, so it is found by
solving r0 + J d = s t for each sign pattern s and keeping the smallest t (the Haar condition).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Trial = tuple[float, float, list[float]]  # (x1, x2, jcts)


def worst_log_error(jcts: list[float], targets: list[float]) -> float:
    return max(abs(math.log(j / t)) for j, t in zip(jcts, targets))


def linear_minimax(r0: np.ndarray, jac: np.ndarray) -> tuple[np.ndarray, float]:
    """The step d (2,) minimising max_i |r0_i + (jac @ d)_i| for three residuals, and that value."""
    best_d, best_t = np.zeros(2), float(np.max(np.abs(r0)))
    for signs in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)):
        # r0 + J d - s t = 0: three equations in (d1, d2, t).
        system = np.column_stack([jac, -np.asarray(signs, float)])
        if abs(np.linalg.det(system)) < 1e-12:
            continue
        d1, d2, t = np.linalg.solve(system, -r0)
        if abs(t) < best_t:
            best_d, best_t = np.array([d1, d2]), abs(t)
    return best_d, best_t


def minimax_fit_2d(jcts_of: Callable[[float, float], list[float]], targets: list[float], start: tuple[float, float],
                   steps: tuple[float, float], bounds: tuple[tuple[float, float], tuple[float, float]],
                   tolerance: float, max_runs: int = 7, known: list[Trial] | None = None,
                   trust: tuple[float, float] | None = None) -> tuple[Trial, list[Trial]]:
    """Fit (x1, x2) within `bounds` so that the worst |log(jct_i / target_i)| is smallest; every
    jct_i is assumed to fall as x1 rises (an efficiency). `steps` = (relative step of x1, absolute
    step of x2) for the first sensitivities; `trust` = the largest move per trial in (log x1, x2),
    default four times the steps. `known` trials are used before any new evaluation (a run already
    made at exactly that point). Stops once the worst error is within `tolerance` (relative) of the
    linear model's best, below `tolerance` itself, or after `max_runs` new evaluations. Returns the
    best trial and every trial in order."""
    known = list(known or [])
    trials: list[Trial] = []
    runs = 0

    def evaluate(x1: float, x2: float) -> np.ndarray:
        nonlocal runs
        js = next((k[2] for k in known if math.isclose(k[0], x1, rel_tol=1e-9)
                   and math.isclose(k[1], x2, rel_tol=1e-9, abs_tol=1e-15)), None)
        if js is None:
            js = list(jcts_of(x1, x2))
            runs += 1
        trials.append((x1, x2, js))
        return np.array([math.log(j / t) for j, t in zip(js, targets)])

    (lo1, hi1), (lo2, hi2) = bounds
    h1, h2 = math.log1p(steps[0]), steps[1]
    trust1, trust2 = trust or (4 * h1, 4 * h2)
    u = np.array([math.log(start[0]), start[1]])
    r = evaluate(*start)
    # Finite-difference sensitivities, each step taken inward if the start sits on a bound.
    jac = np.zeros((3, 2))
    for axis, h in ((0, h1), (1, h2)):
        v = u.copy()
        v[axis] += h
        if (axis == 0 and math.exp(v[0]) > hi1) or (axis == 1 and v[1] > hi2):
            v[axis] -= 2 * h
        rv = evaluate(math.exp(v[0]), float(v[1]))
        jac[:, axis] = (rv - r) / (v[axis] - u[axis])
    # Continue from the best point so far.
    best_u, best_r = u, r
    for x1, x2, js in trials[1:]:
        rv = np.array([math.log(j / t) for j, t in zip(js, targets)])
        if np.max(np.abs(rv)) < np.max(np.abs(best_r)):
            best_u, best_r = np.array([math.log(x1), x2]), rv
    u, r = best_u, best_r
    while runs < max_runs:
        d, predicted = linear_minimax(r, jac)
        if np.max(np.abs(r)) <= max(predicted * (1 + tolerance), math.log1p(tolerance)) + 1e-12:
            break
        scale = max(abs(d[0]) / trust1, abs(d[1]) / trust2, 1.0)
        v = u + d / scale
        v[0] = min(max(v[0], math.log(lo1)), math.log(hi1))
        v[1] = min(max(v[1], lo2), hi2)
        step = v - u
        if not np.any(np.abs(step) > 1e-12):
            break  # pinned at a bound
        rv = evaluate(math.exp(v[0]), float(v[1]))
        jac += np.outer(rv - r - jac @ step, step) / float(step @ step)  # Broyden's rank-one update
        if np.max(np.abs(rv)) < np.max(np.abs(r)):
            u, r = v, rv
    best = min(trials, key=lambda t: worst_log_error(t[2], targets))
    return best, trials
