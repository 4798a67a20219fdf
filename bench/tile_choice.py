"""Hopper token tiles of 64 against 128 on the benchmark specs and the MoE extras (experiment; bench/NOTES.md).

Harness-style: 15 input sets per spec, L2 flushed, sets back to back, mean of 20 repeats, each variant forced
with _C._set_kernel; "auto" shows what the per-call heuristic picked. Run on an H100/H200:
python3 bench/tile_choice.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from nvfp4_group_gemm import _C, custom_kernel  # noqa: E402
from nvfp4_group_gemm.data import generate_input  # noqa: E402

SPECS = [
    ("1", [80, 176, 128, 72, 64, 248, 96, 160], 4096, 7168),
    ("2", [40, 76, 168, 72, 164, 148, 196, 160], 7168, 2048),
    ("3", [192, 320], 3072, 4096),
    ("4", [128, 384], 4096, 1536),
    ("G=32", [int(x) for x in torch.randint(0, 301, (32,), generator=torch.Generator().manual_seed(32))], 4096, 7168),
    ("G=64", [int(x) for x in torch.randint(0, 41, (64,), generator=torch.Generator().manual_seed(64))], 7168, 2048),
]
CHOICES = ["hopper64", "hopper128", "auto", "portable"]


def time_us(sets, flush, repeats=20):
    for data in sets:
        custom_kernel(data)
    total = 0.0
    for _ in range(repeats):
        torch.cuda.synchronize()
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for data in sets:
            custom_kernel(data)
        end.record()
        torch.cuda.synchronize()
        total += start.elapsed_time(end) * 1e3 / len(sets)
    return total / repeats


def main():
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    print("spec   " + "".join(f"{c:>12}" for c in CHOICES) + "   (us per call)")
    for name, m, n, k in SPECS:
        sets = [generate_input(m, n, k, seed=1000 + i) for i in range(15)]
        row = []
        for choice in CHOICES:
            _C._set_kernel(choice)
            row.append(time_us(sets, flush))
        _C._set_kernel("auto")
        print(f"{name:6} " + "".join(f"{t:12.1f}" for t in row))


if __name__ == "__main__":
    main()
