"""workload.agents / aps / time_scale as pure, seeded functions."""

from __future__ import annotations

import numpy as np
import pytest

from dpsim.workload.trajectory import Trajectory, Turn
from dpsim.workload.transform import apply_workload_options


def _set(n=10, arrivals=True):
    return [Trajectory(f"t{i}", [Turn(100 + i, 0, 5), Turn(200 + i, 100 + i, 5, 2.0)],
                       float(i) if arrivals else None, {"turn_arrival_s": [float(i), i + 3.0]} if arrivals else {})
            for i in range(n)]


def test_no_options_is_an_equal_copy():
    src = _set()
    out = apply_workload_options(src)
    assert [(t.id, t.turns, t.arrival_s, t.meta) for t in out] == [(t.id, t.turns, t.arrival_s, t.meta) for t in src]
    out[0].meta["x"] = 1
    out[0].turns.append(Turn(1, 0, 1))
    assert "x" not in src[0].meta and len(src[0].turns) == 2  # inputs untouched


def test_trim_is_a_seeded_sample_in_original_order():
    src = _set()
    a = apply_workload_options(src, agents=4, seed=1)
    assert a and len(a) == 4
    assert [t.id for t in a] == [t.id for t in apply_workload_options(src, agents=4, seed=1)]
    ids = [int(t.id[1:]) for t in a]
    assert ids == sorted(ids) and len(set(ids)) == 4
    samples = {tuple(t.id for t in apply_workload_options(src, agents=4, seed=s)) for s in range(10)}
    assert len(samples) > 1  # the seed matters


def test_resample_up_keeps_every_original_and_adds_unique_copies():
    src = _set(3)
    out = apply_workload_options(src, agents=8, seed=0)
    assert len(out) == 8 and len({t.id for t in out}) == 8
    assert [t.id for t in out[:3]] == ["t0", "t1", "t2"]
    for t in out[3:]:
        orig = src[int(t.meta["copy_of"][1:])]
        assert t.turns == orig.turns and t.arrival_s == orig.arrival_s


def test_time_scale_scales_arrivals_and_think_times():
    out = apply_workload_options(_set(), time_scale=0.5)
    assert out[4].arrival_s == 2.0
    assert out[4].turns[1].think_time_s == 1.0
    assert out[4].meta["turn_arrival_s"] == [2.0, 3.5]
    with pytest.raises(ValueError):
        apply_workload_options(_set(), time_scale=-1)


def test_aps_redraws_poisson_arrivals():
    src = _set(4000, arrivals=False)
    out = apply_workload_options(src, aps=2.0, seed=3)
    t = np.array([x.arrival_s for x in out])
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert (gaps > 0).all()
    assert gaps.mean() == pytest.approx(0.5, rel=0.05)
    assert gaps.std() == pytest.approx(0.5, rel=0.08)  # exponential: std == mean
    again = apply_workload_options(src, aps=2.0, seed=3)
    assert [x.arrival_s for x in again] == list(t)
    assert [x.arrival_s for x in apply_workload_options(src, aps=2.0, seed=4)] != list(t)
    with pytest.raises(ValueError):
        apply_workload_options(src, aps=0)


def test_aps_moves_recorded_turn_arrivals_with_the_session():
    out = apply_workload_options(_set(3), aps=1.0, seed=0, time_scale=2.0)
    for t in out:
        assert t.meta["turn_arrival_s"][0] == pytest.approx(t.arrival_s)
        assert t.meta["turn_arrival_s"][1] - t.arrival_s == pytest.approx(6.0)  # 3 s gap, scaled by 2


def test_max_context_cuts_trajectories_and_drops_empty_ones():
    src = [Trajectory("a", [Turn(100, 0, 10), Turn(150, 110, 10, 1.0), Turn(300, 160, 10, 1.0), Turn(50, 0, 1)],
                      0.0, {"turn_arrival_s": [0.0, 1.0, 2.0, 3.0], "subagent_turn_index": [1, 3], "subagent_turns": 2,
                       "subagent_start_index": [1, 3], "subagents": 2}),
           Trajectory("b", [Turn(500, 0, 1)], 1.0, {})]
    (a,) = apply_workload_options(src, max_context=200)
    assert [t.input_tokens for t in a.turns] == [100, 150]  # stops at the 310-token turn, not resumed after
    assert a.meta["turn_arrival_s"] == [0.0, 1.0]
    assert a.meta["subagent_turn_index"] == [1] and a.meta["subagent_turns"] == 1
    assert a.meta["subagent_start_index"] == [1] and a.meta["subagents"] == 1
    assert a.meta["turns_cut"] == 2
    assert len(src[0].turns) == 4  # input untouched
    with pytest.raises(ValueError, match="no trajectory"):
        apply_workload_options(src, max_context=50)
