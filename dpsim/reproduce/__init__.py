"""Reproduce the DualPath paper: experiments as data, points in parallel, figures, validation table.

    experiments = load_experiments("scenarios/paper/experiments")     # one YAML file per experiment
    points = build_points(experiments, quick=True)                     # dpsim.planning.sweep.Point list
    table = run_reproduce(experiments, quick=True, jobs=2, out="runs/reproduce")   # points.csv + figures
    print(validation_markdown(table, load_published("scenarios/paper/published.yaml")))

The command line is `dpsim reproduce` and `dpsim validation-report` (dpsim/cli/reproduce.py).
"""

from dpsim.reproduce.experiments import Experiment, ExperimentError, build_points, load_experiments

__all__ = ["Experiment", "ExperimentError", "build_points", "load_experiments"]
