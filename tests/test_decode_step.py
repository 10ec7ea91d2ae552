"""A decode group's step time (`DecodeGroup._step_seconds`) re-evaluates only the engines whose batch
changed; it must equal `GpuModel.decode_step` over every engine, to the bit, after any sequence of
joins and finishes."""

import heapq
import random
from types import SimpleNamespace

from dpsim.kernel.engines.decode import DecodeGroup
from dpsim.kernel.resources.gpu import GpuModel
from dpsim.scenario.config import GpuConfig
from dpsim.scenario.models import DS660B, QWEN32B


def _engine():
    return SimpleNamespace(active=[], kv_read_bytes=0.0, attn_flops=0.0)


def _finish(group: DecodeGroup, req) -> None:
    """A request leaves as in DecodeGroup._run: its finish entry comes off the heap, then _remove."""
    group._finishes = [entry for entry in group._finishes if entry[2] is not req]
    heapq.heapify(group._finishes)
    group._remove(req)


def _full_step(gpu: GpuModel, engines) -> float:
    return gpu.decode_step([e.kv_read_bytes for e in engines], [len(e.active) for e in engines],
                           [e.attn_flops for e in engines])


def test_cached_step_equals_the_full_step():
    for model, weights in ((DS660B, 2e10), (QWEN32B, 0.0)):  # no weights: the step may be compute-bound
        gpu = GpuModel(model, GpuConfig(), group_gpus=8, weights_bytes_per_gpu=weights)
        group = DecodeGroup(sim=None, index=0, nodes=1, gpu=gpu)
        group.engines = [_engine() for _ in range(8)]
        rng = random.Random(3)
        running = []
        for _ in range(400):
            if running and rng.random() < 0.45:
                _finish(group, running.pop(rng.randrange(len(running))))
            else:
                for _ in range(rng.randrange(1, 4)):
                    context = rng.randrange(1, 130_000)
                    req = SimpleNamespace(de=rng.choice(group.engines), decode_remaining=rng.randrange(1, 500),
                                          decode_kv_read_bytes=model.decode_kv_read_bytes(context),
                                          decode_attn_flops=model.decode_attention_flops(context))
                    group._joining.append(req)
                    running.append(req)
                group._admit()
            assert group._step_seconds() == _full_step(gpu, group.engines)
        while running:  # back to empty: the rounding residue of += and -= is the same either way
            _finish(group, running.pop())
        assert group._step_seconds() == _full_step(gpu, group.engines)
