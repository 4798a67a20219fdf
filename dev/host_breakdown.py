"""Where the host time of one custom_kernel call goes, stage by stage.

Idle GPU, hot caches: a call rejected at once (call + exception), a call rejected by the very last check
(every group read and planned: a CPU tensor in the last group), the stream query alone, and _C._plan_only
(everything custom_kernel does but the launch). Busy GPU, variants interleaved: custom_kernel, the bare
launch of a prepared call, and _plan_only followed by the bare launch.
Run on a GPU machine after `make build`: python3 dev/host_breakdown.py
"""

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from nvfp4_group_gemm import _C, custom_kernel  # noqa: E402
from nvfp4_group_gemm.data import generate_input  # noqa: E402


def per_call_us(fn, arg, calls=20000, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            try:
                fn(arg)
            except (TypeError, ValueError):
                pass
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def busy_gpu_us(variants, calls=200, rounds=15):
    """Host us per call of each variant while a sleep kernel keeps the GPU busy (launches never wait).

    Variants are interleaved round by round, so drift hits them alike; the median round counts."""
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (fn, arg) in variants.items():
            torch.cuda.synchronize()
            torch.cuda._sleep(50_000_000)
            start = time.perf_counter()
            for _ in range(calls):
                fn(arg)
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    torch.cuda.synchronize()
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    for groups in (8, 64):
        data = generate_input([64] * groups, [128] * groups, [256] * groups, seed=groups)
        abc, sf, sfr, sizes = data
        early = per_call_us(custom_kernel, ([None] + list(abc[1:]), sf, sfr, sizes))
        last_cpu = list(sfr[:-1]) + [(sfr[-1][0], sfr[-1][1].cpu())]
        validated = per_call_us(custom_kernel, (abc, sf, last_cpu, sizes))
        stream = per_call_us(torch._C._cuda_getCurrentRawStream, 0)
        plan_only = per_call_us(_C._plan_only, data)
        capsule = _C._prepare(data)

        def plan_then_bare(arg):
            _C._plan_only(arg[0])
            _C._launch_prepared(arg[1])

        calls = _C.RING_SLOTS if groups > _C.INLINE_CAPACITY else 200  # stay clear of ring waits
        busy = busy_gpu_us({"custom_kernel": (custom_kernel, data), "bare": (_C._launch_prepared, capsule),
                            "plan_only + bare": (plan_then_bare, (data, capsule))}, calls)
        print(f"G={groups}: rejected at once {early:.2f}  read + planned {validated - early:.2f}  "
              f"stream query {stream:.2f}  plan_only {plan_only:.2f} us;  busy GPU: "
              + "  ".join(f"{name} {value:.2f}" for name, value in busy.items())
              + f"  (custom_kernel - bare: {busy['custom_kernel'] - busy['bare']:.2f}) us")
    torch.cuda.synchronize()
    print(_C._stats())


if __name__ == "__main__":
    main()
