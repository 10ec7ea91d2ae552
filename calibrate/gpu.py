"""GPU measurements with torch (extra ``gpu``), imported lazily.

* host <-> device copies from **pinned** host memory (``copy_(non_blocking=True)`` on a side
  stream, timed with CUDA events, after warm-up) versus size -> ``gpu.h2d_bandwidth`` and
  ``gpu.copy_submit_overhead`` (the alpha of the fit);
* prefill / decode GEMM timing for a model's shapes (tokens x hidden x hidden), FLOP/s achieved.

On ``--device cpu`` the same code path runs with ``perf_counter`` timing and unpinned memory; every
sample is marked ``not_representative`` and the profile says so.
"""

from __future__ import annotations

import time

from .errors import Unavailable, one_line
from .measure import SampleLog

HIDDEN = {"ds660b": 7168, "ds27b": 2560, "qwen32b": 5120}


def require_torch(device: str):
    try:
        import torch
    except Exception as e:  # ImportError, or OSError from a broken CUDA library
        raise Unavailable(f"gpu measurements need torch (pip install 'dpsim[gpu]'): {one_line(e)}") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Unavailable(f"no CUDA device visible to torch {torch.__version__}; use --device cpu for a "
                          "non-representative run of the same code")
    return torch


def versions(torch, device: str) -> dict:
    v = {"torch": torch.__version__, "device": device, "not_representative": not device.startswith("cuda")}
    if device.startswith("cuda"):
        v["gpu_name"] = torch.cuda.get_device_name(torch.device(device))
        v["cuda"] = torch.version.cuda
    return v


class _Timer:
    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.startswith("cuda")
        self.stream = torch.cuda.Stream(device=device) if self.cuda else None

    def time(self, fn, reps: int) -> list[float]:
        torch = self.torch
        out = []
        for _ in range(reps):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                with torch.cuda.stream(self.stream):
                    start.record(self.stream)
                    fn()
                    end.record(self.stream)
                end.synchronize()
                out.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
        return out


def copy_sweep(torch, device: str, sizes: list[int], reps: int, log: SampleLog, warmup: int = 3) -> None:
    cuda = device.startswith("cuda")
    if not cuda:
        # one thread: a host memcpy stand-in; waking an intra-op pool costs ms on a busy 2-core box
        torch.set_num_threads(1)
    timer = _Timer(torch, device)
    rep_flag = not cuda
    for size in sizes:
        host = torch.empty(size, dtype=torch.uint8, pin_memory=cuda)
        dev = torch.empty(size, dtype=torch.uint8, device=device)
        # The closures run inside this iteration (timer.time), so they see this size's buffers.
        for link, fn in (("h2d", lambda: dev.copy_(host, non_blocking=True)),  # noqa: B023
                         ("d2h", lambda: host.copy_(dev, non_blocking=True))):  # noqa: B023
            timer.time(fn, warmup)
            for rep, el in enumerate(timer.time(fn, reps)):
                log.write({"kind": "gpu", "link": link, "op": "copy", "size": size, "elapsed_s": el, "count": 1,
                           "bytes": size, "rep": rep, "pinned": cuda, "device": device,
                           "not_representative": rep_flag, "config": f"gpu:{link}:{device}"})


def kernel_timing(torch, device: str, model: str, reps: int, log: SampleLog) -> None:
    key = model.lower().replace("-", "").replace(".", "")
    if key not in HIDDEN:
        raise Unavailable(f"no kernel shapes known for model {model!r} (known: {', '.join(HIDDEN)})")
    h = HIDDEN[key]
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    timer = _Timer(torch, device)
    w = torch.randn(h, h, dtype=dtype, device=device)
    for phase, tokens in (("decode", 64), ("prefill", 4096 if cuda else 512)):
        x = torch.randn(tokens, h, dtype=dtype, device=device)
        fn = lambda: torch.matmul(x, w)  # noqa: E731, B023  (timed within this iteration)
        timer.time(fn, 2)
        for rep, el in enumerate(timer.time(fn, reps)):
            flops = 2.0 * tokens * h * h
            log.write({"kind": "gpu_kernel", "link": f"{phase}_gemm", "op": "gemm", "size": tokens, "hidden": h,
                       "elapsed_s": el, "flops": flops, "flop_rate": flops / el, "rep": rep, "model": key,
                       "device": device, "not_representative": not cuda})
