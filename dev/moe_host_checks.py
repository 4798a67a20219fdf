"""What grouped_mm's host side costs before any CUDA work: its keyword parsing, the reading of its six tensors and
every check of csrc/moe_args.c, timed on CPU tensors with the CPU reference it would then call replaced by a
no-op, against a Python no-op called with the same arguments. No GPU needed; E = 8 and 64 (the host path has no
per-expert work, so the two should match).
Run: python3 dev/moe_host_checks.py
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from nvfp4_group_gemm import _C, moe  # noqa: E402

CALLS = 100000
REPEATS = 5


def best_per_call_us(fn, args, kwargs):
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(CALLS):
            fn(*args, **kwargs)
        best = min(best, (time.perf_counter() - start) / CALLS)
    return best * 1e6


def main():
    # _C looks the reference up at its first CPU call, so the stub must be in place before that call.
    moe.reference = lambda *args: None
    tokens, n, k = 1024, 512, 256
    for experts in (8, 64):
        a = torch.zeros(tokens, k // 2, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
        b = torch.zeros(experts, n, k // 2, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
        a_scale = torch.zeros(tokens + 128 * experts, k // 16, dtype=torch.float8_e4m3fn)
        b_scale = torch.zeros(experts, n, k // 16, dtype=torch.float8_e4m3fn)
        offsets = torch.arange(1, experts + 1, dtype=torch.int32) * (tokens // experts)
        out = torch.empty(tokens, n, dtype=torch.float16)
        args = (a, b, a_scale, b_scale, offsets)
        kwargs = {"out_dtype": torch.float16, "out": out}
        checked = best_per_call_us(_C.grouped_mm, args, kwargs)
        nothing = best_per_call_us(lambda *args, **kwargs: None, args, kwargs)
        print(f"E={experts}: grouped_mm's parsing and checks (reference stubbed) {checked:.3f} us a call; "
              f"a Python no-op with the same arguments {nothing:.3f} us")


if __name__ == "__main__":
    main()
