"""Where the host time of one custom_kernel call goes (experiment; see bench/NOTES.md).

Times rejected calls that stop at successive stages, so differences isolate each stage:
early rejection (call + exception), parsing every group (bad K in group 0 is found by the planner first),
parsing + planning (a CPU tensor in the last group fails the last check), the stream query, and the bare launch.
Run on a GPU machine: python3 bench/host_breakdown.py
"""

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


def main():
    for groups in (8, 64):
        data = generate_input([64] * groups, [128] * groups, [256] * groups, seed=groups)
        abc, sf, sfr, sizes = data
        early = per_call_us(custom_kernel, ([None] + list(abc[1:]), sf, sfr, sizes))
        parse = per_call_us(custom_kernel, (abc, sf, sfr, [(64, 128, 96, 1)] + list(sizes[1:])))
        last_cpu = list(sfr[:-1]) + [(sfr[-1][0], sfr[-1][1].cpu())]
        plan = per_call_us(custom_kernel, (abc, sf, last_cpu, sizes))
        stream = per_call_us(torch._C._cuda_getCurrentRawStream, 0)
        print(f"G={groups}: early {early:.2f}  +parse {parse - early:.2f}  +plan {plan - parse:.2f}  "
              f"stream query {stream:.2f} us")
    torch.cuda.synchronize()
    print(_C._stats())


if __name__ == "__main__":
    main()
