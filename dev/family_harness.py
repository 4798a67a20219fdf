"""GPU time per call of one kernel family, timed like the leaderboard, without the rest of bench/bench.py.

    python3 dev/family_harness.py [FAMILY] [--extras]

FAMILY is what `_C._set_kernel` takes (default "auto"). The four benchmark specs with 15 fresh input sets each
(and, with --extras, bench.py's two MoE extras with 5 sets each), timed by bench.py's harness_time: synchronize,
flush L2, all sets back to back between two events, repeated 10-60 times. Prints one line: the times in us and the
specs' geomean. Outputs are not checked here (the GPU tests and bench.py check them); a quick way to compare
variants of one family in one machine start. Run from the repository root after `make build`, on an H100/H200.
"""

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench")]

import bench  # noqa: E402  (its specs and harness)
from nvfp4_group_gemm import _C, custom_kernel  # noqa: E402
from nvfp4_group_gemm import data as inputs  # noqa: E402

SETTINGS = dict(sets=15, min_repeats=10, max_repeats=60)
EXTRA_SETS = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", nargs="?", default="auto")
    parser.add_argument("--extras", action="store_true", help="also the MoE extras (G=32, G=64)")
    args = parser.parse_args()
    _C._set_kernel(args.family)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    shapes = [(m, n, k, SETTINGS["sets"]) for m, n, k in bench.BENCHMARK_SPECS]
    if args.extras:
        shapes += [(m, n, k, EXTRA_SETS) for _, m, n, k in bench.MOE_EXTRAS]
    times = []
    for index, (m, n, k, set_count) in enumerate(shapes):
        sets = [inputs.generate_input(m, n, k, 1, seed=100 * index + i, device="cuda") for i in range(set_count)]
        times.append(bench.harness_time([(custom_kernel, data) for data in sets], flush, SETTINGS)["mean_us"])
        del sets
        torch.cuda.empty_cache()
    line = " / ".join(f"{t:.1f}" for t in times)
    print(f"{args.family}: {line}  geomean of the specs {bench.geomean(times[:4]):.1f} us")


if __name__ == "__main__":
    main()
