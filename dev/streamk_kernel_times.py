"""GPU time of the stream-K Hopper kernel's two launches, apart: the token pre-pass and the main kernel.

On the four benchmark specs, with the stream-K family forced: 3 warm-up calls, then torch.profiler over 5 calls;
prints each kernel's mean device time. Run from the repository root on an H100/H200 after `make build`:
    python3 dev/streamk_kernel_times.py
"""

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench")]

import bench  # noqa: E402  (its BENCHMARK_SPECS)
from nvfp4_group_gemm import _C, custom_kernel  # noqa: E402
from nvfp4_group_gemm import data as inputs  # noqa: E402

CALLS = 5


def main():
    _C._set_kernel("auto")
    for index, (m, n, k) in enumerate(bench.BENCHMARK_SPECS):
        data = inputs.generate_input(m, n, k, 1, seed=index, device="cuda")
        for _ in range(3):
            custom_kernel(data)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as trace:
            for _ in range(CALLS):
                custom_kernel(data)
            torch.cuda.synchronize()
        times = {}
        for event in trace.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                name = "pre-pass" if "prepass" in event.name else "main" if "streamk_gemm" in event.name else event.name
                times.setdefault(name, []).append(event.device_time_total)
        print(f"spec {index + 1}: " + ", ".join(f"{name} {sum(t) / len(t):.1f} us" for name, t in times.items()))


if __name__ == "__main__":
    main()
