"""The narrow view an engine group has of the simulation it runs in (`SimContext`).

Engines (`dpsim.kernel.engines`) drive requests through passes and steps; what they may read (the
clock, the model, the ablation switches, the cluster's links) and what they may ask for (a KV
transfer, a dispatch round, a hand-off to decode, a finished request) is this protocol and nothing
more. `dpsim.kernel.simulation.Simulation` implements it; a test can implement it with a stub. The
engines import this module, never the simulation, so the kernel's import graph has no cycle.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import simpy

from dpsim.kernel.entities import PrefillEngine, Request
from dpsim.kernel.resources.elements import Link
from dpsim.kernel.resources.hardware import Cluster, Node
from dpsim.scenario.config import Scenario, Switches
from dpsim.scenario.models import ModelSpec


class SimContext(Protocol):
    """What an engine group sees of its simulation."""

    env: simpy.Environment
    scenario: Scenario
    model: ModelSpec
    switches: Switches
    cluster: Cluster

    def move(self, path: list[Link], size_bytes: float, tag: str, done: simpy.Event | None = None) -> simpy.Event:
        """A KV transfer on the low class (instant for the Oracle); `done`: a shared countdown."""

    def dispatch(self) -> None:
        """Place queued requests now that something they wait for changed."""

    def read_hit_kv(self, req: Request) -> Generator[simpy.Event, Any, None]:
        """Process body: read the request's hit KV from storage into its read side's buffer."""

    def de_buffer_tokens(self, req: Request) -> int:
        """Tokens of the request's KV that gather in the DE node's buffer (all of the prompt, or
        only a DE-side hit with the DE-buffer bypass, docs/whatif.md#3-de-buffer-bypass-gpudirect-rdma-into-decode-hbm)."""

    def release_buffer(self, node: Node, size_bytes: float) -> None:
        """Give back DRAM buffer space of `node`."""

    def prefill_done(self, engine: PrefillEngine, req: Request) -> None:
        """`req` has left prefill engine `engine` (its tok and seq fall)."""

    def release_pe_buffer(self, req: Request) -> None:
        """Give back the PE-side buffer that holds the request's hit KV (once)."""

    def hand_over(self, req: Request, kv_sent: simpy.Event) -> None:
        """The prefill is done: the request's decode group takes it once `kv_sent` fires."""

    def finish(self, req: Request) -> None:
        """The request's last token is out."""
