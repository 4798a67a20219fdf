"""A few shapes for compute-sanitizer (make memcheck / sanitize): edge tiles, empty groups, L = 2, the ring path,
on both kernel families, through custom_kernel; and grouped_mm (both families: on the stream-K kernel its MoE
pre-pass that derives the layout, and with more experts than that pre-pass's threads the table kernel first; alpha,
bfloat16, offsets out of range that the layout clamps).

Run under the sanitizer, each call is checked against the reference as well; the sanitizer's own
summary line ("ERROR SUMMARY: 0 errors") is what `make memcheck` looks for.
"""

import sys

import torch

from nvfp4_group_gemm import _C, custom_kernel, grouped_mm, moe
from nvfp4_group_gemm.data import generate_input, poison_outputs
from nvfp4_group_gemm.reference import check_close, ref_kernel

CASES = [
    dict(m=[1, 7, 129], n=[1, 200, 8], k=[64, 320, 128]),
    dict(m=[0, 300], n=[1000, 72], k=[128, 64]),
    dict(m=[96, 33], n=[136, 40], k=[256, 192], l=2),
    dict(m=[(13 * i) % 70 for i in range(40)], n=[72] * 40, k=[64] * 40),  # more groups than fit by value
]

MOE_CASES = [([0, 40, 3, 0, 130], 256, 512), ([128, 384], 512, 1536), ([17] * 50 + [0] * 14, 72, 128),
             ([0] * 200 + [3] * 60, 72, 128)]


def main():
    failures = 0
    for kernel in ("auto", "portable"):  # on an H100/H200: the stream-K kernel, then the portable one
        _C._set_kernel(kernel)
        for i, case in enumerate(CASES):
            data = generate_input(case["m"], case["n"], case["k"], l=case.get("l", 1), seed=i, full_range=True)
            poison_outputs(data)
            outputs = custom_kernel(data)
            torch.cuda.synchronize()
            for g, (out, ref) in enumerate(zip(outputs, ref_kernel(data))):
                ok, message = check_close(out, ref)
                if not ok:
                    failures += 1
                    print(f"{kernel} kernel, case {i} group {g}: {message}")
        for i, (m, n, k) in enumerate(MOE_CASES):
            data = generate_input(m, n, k, seed=100 + i, full_range=True)
            args = moe.from_leaderboard(data)
            out = torch.full((sum(m), n), float("nan"), dtype=torch.float16, device="cuda")
            grouped_mm(*args, out_dtype=torch.float16, out=out)
            torch.cuda.synchronize()
            ends = [0] + args[4].tolist()
            for g, ref in enumerate(ref_kernel(data)):
                ok, message = check_close(out[ends[g]:ends[g + 1]], ref[:, :, 0])
                if not ok:
                    failures += 1
                    print(f"{kernel} kernel, grouped_mm case {i} expert {g}: {message}")
            clamped = torch.full_like(args[4], 1 << 30)  # every end past T: clamped to T, no read or write outside
            grouped_mm(*args[:4], clamped, alpha=torch.ones(len(m), device="cuda"))
            torch.cuda.synchronize()
    runs = 2 * (len(CASES) + len(MOE_CASES))
    print(f"sanitizer cases: {runs} run, {failures} wrong outputs, launches {_C._stats()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
