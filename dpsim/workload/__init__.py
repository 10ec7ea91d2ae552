"""Workloads: trajectories (the interface), the synthetic agentic generator, trace readers."""

from dpsim.workload.trajectory import Trajectory, Turn, agentic_turns

__all__ = ["Trajectory", "Turn", "agentic_turns"]
