"""GPU time of the stream-K Hopper kernel's launches, apart, through both entry points: custom_kernel (the token
pre-pass and the main kernel) and grouped_mm on the same problem in the MoE layout (its table kernel too).

On the four benchmark specs and the two MoE extras, with the stream-K family forced: 3 warm-up calls, then
torch.profiler over 5 back-to-back calls; prints each kernel's mean device time and the span per call (first
kernel's start to last kernel's end over the 5 calls, divided by 5: gaps included) and each kernel's mean start and
end in microseconds from its call's first kernel start (where programmatic dependent launch lets a kernel start
before the one ahead ends, and how long each runs on after that one), then the time per call of 50
back-to-back calls by CUDA events with no profiler running (no L2 flush). Run from the repository root on
an H100/H200 after `make build`:
    python3 dev/streamk_kernel_times.py
"""

import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench")]

import bench  # noqa: E402  (its BENCHMARK_SPECS)
from nvfp4_group_gemm import _C, custom_kernel, grouped_mm, moe  # noqa: E402
from nvfp4_group_gemm import data as inputs  # noqa: E402

CALLS = 5
EVENT_CALLS = 50


def kernel_times(call, arg):
    for _ in range(3):
        call(arg)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        for _ in range(CALLS):
            call(arg)
        torch.cuda.synchronize()
    times, starts, ends, launches = {}, [], [], []
    for event in trace.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            name = ("pre-pass" if "prepass" in event.name else "main" if "streamk_gemm" in event.name
                    else "table" if "moe_table" in event.name else event.name)
            times.setdefault(name, []).append(event.device_time_total)
            starts.append(event.time_range.start)
            ends.append(event.time_range.end)
            launches.append((event.time_range.start, event.time_range.end, name))
    parts = ", ".join(f"{name} {sum(t) / len(t):.1f} us" for name, t in times.items())
    # Every call makes the same launches in the same order: split the sorted launches into CALLS equal runs.
    launches.sort()
    per_call = len(launches) // CALLS
    offsets = {}
    for c in range(CALLS):
        run = launches[c * per_call:(c + 1) * per_call]
        for start_us, end_us, name in run:
            offsets.setdefault(name, []).append((start_us - run[0][0], end_us - run[0][0]))
    timeline = ", ".join(f"{name} {sum(s for s, _ in o) / len(o):.1f}-{sum(e for _, e in o) / len(o):.1f}"
                         for name, o in offsets.items())
    # The same calls timed by CUDA events with no profiler running: the profiler's per-launch cost can make the host
    # set the span of short calls, the events' time is what the GPU takes once the host is ahead.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(EVENT_CALLS):
        call(arg)
    end.record()
    torch.cuda.synchronize()
    return (f"{parts}; timeline {timeline}; span {(max(ends) - min(starts)) / CALLS:.1f} us per call; "
            f"events {start.elapsed_time(end) * 1e3 / EVENT_CALLS:.1f} us per call")


def main():
    _C._set_kernel("auto")
    shapes = [(f"spec {i + 1}", m, n, k) for i, (m, n, k) in enumerate(bench.BENCHMARK_SPECS)]
    shapes += [(name, m, n, k) for name, m, n, k in bench.MOE_EXTRAS]
    for index, (label, m, n, k) in enumerate(shapes):
        data = inputs.generate_input(m, n, k, 1, seed=index, device="cuda")
        args = moe.from_leaderboard(data)
        out = torch.empty(sum(m), n, dtype=torch.float16, device="cuda")
        print(f"{label} custom_kernel: {kernel_times(custom_kernel, data)}")
        print(f"{label} grouped_mm:    "
              f"{kernel_times(lambda a: grouped_mm(*a, out_dtype=torch.float16, out=out), args)}")


if __name__ == "__main__":
    main()
