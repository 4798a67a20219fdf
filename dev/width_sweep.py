"""Steady-state pace of the stream-K main kernel per wgmma width.

One group of M = width tokens, N = 16384 weight rows (128 units: whole units, one per CTA), K = 8192 (512 k16
steps a unit), with the stream-K family forced: 3 warm-up calls, then torch.profiler over 5. Prints the main
kernel's and the pre-pass's mean device time and the main kernel's clocks per k16 step after the pre-pass
(the main kernel waits for it), at SM_CLOCK_GHZ, against the N clocks that the step's tensor work takes.
Run from any directory on an H100/H200 after `make build`:
    python3 dev/width_sweep.py 32,64,96,128
"""

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python")]

from nvfp4_group_gemm import _C, custom_kernel  # noqa: E402
from nvfp4_group_gemm import data as inputs  # noqa: E402

N, K = 16384, 8192
STEPS = K // 16
SM_CLOCK_GHZ = 1.98  # what nvidia-smi reports on the H200 under this load


def main():
    _C._set_kernel("auto")
    widths = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "32,64,96,128").split(",")]
    for m in widths:
        data = inputs.generate_input([m], [N], [K], 1, seed=m, device="cuda")
        for _ in range(3):
            custom_kernel(data)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as trace:
            for _ in range(5):
                custom_kernel(data)
            torch.cuda.synchronize()
        times = {}
        for event in trace.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                times.setdefault("pre-pass" if "prepass" in event.name else "main", []).append(event.device_time_total)
        pre, main_us = (sum(times[k]) / len(times[k]) for k in ("pre-pass", "main"))
        clocks = (main_us - pre) * SM_CLOCK_GHZ * 1e3 / STEPS
        print(f"M = {m:3d}: pre-pass {pre:5.1f} us, main {main_us:6.1f} us, {clocks:5.0f} clocks a k16 step "
              f"(tensor work {m} clocks: {100 * m / clocks:4.1f}%)")


if __name__ == "__main__":
    main()
