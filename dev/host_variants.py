"""Host time of custom_kernel across several builds of _C, interleaved in one process (experiment tool).

    python3 dev/host_variants.py NAME=PATH/_C.so [NAME=PATH/_C.so ...]    (GROUPS=8 by default)

Build each variant in its own tree (for instance `git worktree add /tmp/v1 <rev>` and `python3 setup.py
build_ext --inplace` there, with NVFP4_GENCODE="-gencode=arch=compute_90,code=sm_90" to build faster); the
first build's package provides the data generator. Every round times, for every build and in alternating order,
a window of CALLS calls behind a sleep kernel (so no launch waits) of: custom_kernel, the bare launch of a
prepared call, _plan_only followed by the bare launch, and _plan_only alone (no launch in between, so its code
and data stay in the core's caches). Prints medians, quartiles and the medians of the per-round differences
custom - bare and (plan + bare) - bare. Loading several builds in one process costs each a little cache and TLB,
so absolute differences read ~0.1 us above bench/bench.py's; compare builds within one run.
"""
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch

CALLS, ROUNDS = 200, 31
SPEC1_M = [80, 176, 128, 72, 64, 248, 96, 160]  # benchmark spec 1: N = 4096, K = 7168


def load(path):
    loader = importlib.machinery.ExtensionFileLoader("nvfp4_group_gemm._C", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("nvfp4_group_gemm._C", path,
                                                                                  loader=loader))
    loader.exec_module(module)
    return module


def window_us(fn, arg):
    torch.cuda.synchronize()
    torch.cuda._sleep(20_000_000)
    done = torch.cuda.Event()
    done.record()
    start = time.perf_counter()
    for _ in range(CALLS):
        fn(arg)
    elapsed = time.perf_counter() - start
    if done.query():
        raise RuntimeError("the GPU went idle inside a window; raise the sleep")
    return elapsed / CALLS * 1e6


def quartiles(values):
    v = sorted(values)
    return v[len(v) // 4], statistics.median(v), v[3 * len(v) // 4]


def main():
    builds = [arg.split("=", 1) for arg in sys.argv[1:]]
    if not builds:
        sys.exit(__doc__)
    sys.path.insert(0, str(Path(builds[0][1]).resolve().parents[1]))
    from nvfp4_group_gemm.data import generate_input

    groups = int(os.environ.get("GROUPS", "8"))
    m = SPEC1_M[:groups] if groups <= len(SPEC1_M) else [40] * groups
    data = generate_input(m, 4096, 7168, 1, seed=1)
    kinds = {}
    for name, path in builds:
        C = load(path)
        capsule = C._prepare(data)

        def plan_then_bare(arg, C=C, capsule=capsule):
            C._plan_only(arg)
            C._launch_prepared(capsule)

        kinds[name] = {"custom": (C.custom_kernel, data), "bare": (C._launch_prepared, capsule),
                       "plan+bare": (plan_then_bare, data), "plan": (C._plan_only, data)}
        for fn, arg in kinds[name].values():
            fn(arg)
    times = {(name, kind): [] for name in kinds for kind in kinds[name]}
    for r in range(ROUNDS):
        for name in (list(kinds) if r % 2 == 0 else list(reversed(kinds))):
            for kind, (fn, arg) in kinds[name].items():
                times[(name, kind)].append(window_us(fn, arg))
    torch.cuda.synchronize()
    print(f"G={groups}, {ROUNDS} rounds of {CALLS} calls, GPU busy; us, median (q1..q3)")
    for name in kinds:
        cells = []
        for kind in kinds[name]:
            q1, med, q3 = quartiles(times[(name, kind)])
            cells.append(f"{kind} {med:.2f} ({q1:.2f}..{q3:.2f})")
        for label, first in (("custom-bare", "custom"), ("plan+bare-bare", "plan+bare")):
            q1, med, q3 = quartiles([a - b for a, b in zip(times[(name, first)], times[(name, "bare")])])
            cells.append(f"| {label} {med:.2f} ({q1:.2f}..{q3:.2f})")
        print(f"{name:>12}: " + "  ".join(cells))


if __name__ == "__main__":
    main()
