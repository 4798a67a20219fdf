"""A few shapes for compute-sanitizer (make memcheck / sanitize): edge tiles, empty groups, L = 2, the ring path,
on both kernel families.

Run under the sanitizer, each call is checked against the reference as well; the sanitizer's own
summary line ("ERROR SUMMARY: 0 errors") is what `make memcheck` looks for.
"""

import sys

import torch

from nvfp4_group_gemm import _C, custom_kernel
from nvfp4_group_gemm.data import generate_input, poison_outputs
from nvfp4_group_gemm.reference import check_close, ref_kernel

CASES = [
    dict(m=[1, 7, 129], n=[1, 200, 8], k=[64, 320, 128]),
    dict(m=[0, 300], n=[1000, 72], k=[128, 64]),
    dict(m=[96, 33], n=[136, 40], k=[256, 192], l=2),
    dict(m=[(13 * i) % 70 for i in range(40)], n=[72] * 40, k=[64] * 40),  # more groups than fit by value
]


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
    print(f"sanitizer cases: {3 * len(CASES)} run, {failures} wrong outputs, launches {_C._stats()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
