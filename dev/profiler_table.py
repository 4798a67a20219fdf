"""What a user sees in torch.profiler: its op table over calls of both entry points, each call an op of its own name
with its kernels inside it.

Benchmark spec 4 through custom_kernel, then the same problem in the MoE layout through grouped_mm (fp16 out) and
through torch.ops.nvfp4_group_gemm.grouped_mm (bf16 out, alpha): 3 warm-up calls each, then 5 profiled calls of
each with CPU and CUDA activity. Prints the profiler's own table (by total CPU time) and, for each op, the kernels
the trace puts inside it (a kernel belongs to the op in whose time span its launch call ran). Run from the
repository root on a CUDA GPU after `make build`:
    python3 dev/profiler_table.py
"""

import json
import os
import sys
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), os.path.join(ROOT, "bench")]

import bench  # noqa: E402  (its BENCHMARK_SPECS)
from nvfp4_group_gemm import custom_kernel, grouped_mm, moe  # noqa: E402  (moe registers the torch.ops ops)
from nvfp4_group_gemm import data as inputs  # noqa: E402

CALLS = 5
OPS = ("nvfp4_group_gemm::custom_kernel", "nvfp4_group_gemm::grouped_mm")


def kernels_inside(events, op_name):
    """How many ops op_name the trace holds, and the device kernels launched from inside them (a kernel's launch
    found by CUPTI's correlation id, and inside an op's time span), with their counts."""
    ops = [e for e in events if e.get("cat") == "cpu_op" and e.get("name") == op_name]
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    counts = {}
    for event in events:
        launch = launches.get(event.get("args", {}).get("correlation")) if event.get("cat") == "kernel" else None
        if launch and any(op["ts"] <= launch["ts"] <= op["ts"] + op["dur"] for op in ops):
            counts[event["name"]] = counts.get(event["name"], 0) + 1
    return len(ops), counts


def main():
    if not torch.cuda.is_available():
        print("no CUDA GPU: this script profiles kernels", file=sys.stderr)
        return 2
    m, n, k = bench.BENCHMARK_SPECS[3]
    data = inputs.generate_input(m, n, k, 1, seed=4, device="cuda")
    args = moe.from_leaderboard(data)
    alpha = torch.ones(len(m), dtype=torch.float32, device="cuda")
    calls = [("custom_kernel", lambda: custom_kernel(data)),
             ("grouped_mm", lambda: grouped_mm(*args, out_dtype=torch.float16)),
             ("torch.ops grouped_mm", lambda: torch.ops.nvfp4_group_gemm.grouped_mm(*args, alpha=alpha,
                                                                                         out_dtype=torch.bfloat16))]
    for _, call in calls:
        for _ in range(3):
            call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        for _, call in calls:
            for _ in range(CALLS):
                call()
        torch.cuda.synchronize()
    print(f"benchmark spec 4 (m {m}, n {n}, k {k}); {CALLS} calls of each of: " + ", ".join(name for name, _ in calls))
    print(trace.key_averages().table(sort_by="cpu_time_total", row_limit=14))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "trace.json")
        trace.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    for op_name in OPS:
        ops, counts = kernels_inside(events, op_name)
        inside = ", ".join(f"{name} x{count}" for name, count in sorted(counts.items())) or "none"
        print(f"{op_name}: {ops} ops (a call through torch.ops is two: the custom op and the C call inside it share "
              f"the name); kernels launched inside them: {inside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
