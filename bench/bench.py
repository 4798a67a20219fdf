"""Benchmark of the NVFP4 grouped GEMM.

    python3 bench/bench.py [--json PATH] [--quick] [--emulation]

1. GPU time per call on the 4 leaderboard benchmark specs, timed like the leaderboard: 15 input sets per spec, one
   checked call per set, then repeats of {synchronize, flush L2, start event, all sets back to back, end event}.
   Rows: our kernel(s) through custom_kernel, the bare launch of a prepared call, cuBLAS fp16 on operands
   dequantized beforehand (one CUDA graph per set) and, with --emulation, a torch emulation. Speed of light is the
   larger of two floors, printed beside it: FLOPs at the fp16 tensor rate and the fewest bytes at HBM bandwidth.
2. Host time per call with the GPU kept busy by torch.cuda._sleep, so no launch ever waits for the GPU, on every
   spec and extra, for the default kernel, next to its GPU time:
   custom_kernel, the bare launch, and (spec 1 and the G=64 extra) a model of the old Python hot path: the Python
   and torch work it did each call to build the group table on the device, followed by the bare launch of the same
   call (old_python_hot_path says exactly what it runs).
3. A compact table last on stdout, and every raw number as JSON.
"""

import argparse
import json
import math
import os
import pathlib
import random
import shlex
import statistics
import sys
import time

import torch

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

FP16_PEAK_FLOPS = 989e12  # H100/H200 dense fp16 tensor-core rate (spec sheet)
HBM_PEAK_BYTES_PER_S = 4.8e12  # H200 HBM3e bandwidth (spec sheet)

# The leaderboard's four benchmark specs: M per group, one N and K for all groups, L = 1.
BENCHMARK_SPECS = [
    ([80, 176, 128, 72, 64, 248, 96, 160], 4096, 7168),
    ([40, 76, 168, 72, 164, 148, 196, 160], 7168, 2048),
    ([192, 320], 3072, 4096),
    ([128, 384], 4096, 1536),
]


# MoE-style extras, reported next to the benchmarks but not in their geomean: ragged token counts with empty groups,
# as a mixture-of-experts layer routes them, which the four specs never have. Fixed seeds, so every run times the
# same shapes.
_moe_rng = random.Random(32)
MOE_EXTRAS = [
    ("G=32 M 0..300", [0, 0] + [_moe_rng.randint(0, 300) for _ in range(30)], 4096, 7168),
    ("G=64 M 0..40", [_moe_rng.randint(0, 40) for _ in range(64)], 7168, 2048),
]
MOE_EXTRA_SETS = 5  # input sets per extra (each set is up to ~0.5 GB of weights)

TARGET_RELATIVE_SEM = 1e-3  # the leaderboard stops once the mean's standard error is below 0.1% of the mean


def log(message):
    """Progress goes to stderr, so that stdout ends with the table."""
    print(message, file=sys.stderr, flush=True)


def parse_args():
    parser = argparse.ArgumentParser(
        description="Benchmark nvfp4_group_gemm like the leaderboard (GPU time) and measure host time per call.",
        epilog="Needs a CUDA GPU; without one it exits with status 2.",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="where to write all raw numbers (default: $OUT/bench.json if OUT is set, else bench/last_run.json)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 input sets, 10 repeats, short host loops")
    parser.add_argument("--host-only", action="store_true", help="only the host-time section (skips GPU timing)")
    parser.add_argument(
        "--emulation", action="store_true", help="also time the torch emulation (slow; 3 input sets per spec)"
    )
    return parser.parse_args()


def json_path(args):
    if args.json:
        return pathlib.Path(args.json)
    if os.environ.get("OUT"):
        return pathlib.Path(os.environ["OUT"]) / "bench.json"
    return REPO / "bench" / "last_run.json"


def settings_for(args):
    if args.quick:
        return dict(sets=3, min_repeats=10, max_repeats=10, emulation_sets=1, host_calls=50, host_repeats=3)
    return dict(sets=15, min_repeats=10, max_repeats=100, emulation_sets=3, host_calls=200, host_repeats=101)


def ceil_div(a, b):
    return (a + b - 1) // b


def spec_flops(problem_sizes):
    return sum(2 * m * n * k * l for m, n, k, l in problem_sizes)


def spec_bytes(problem_sizes):
    """The fewest bytes a call moves: packed a and b (half a byte an element), one scale byte per 16 elements of
    each, c written in fp16. A group without tokens needs none of its weights."""
    total = 0
    for m, n, k, l in problem_sizes:
        if m == 0:
            continue
        total += l * ((m + n) * (k // 2 + k // 16) + 2 * m * n)
    return total


def geomean(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ---------------------------------------------------------------------------------------------------------------
# Correctness


class WrongResult(Exception):
    pass


def check_outputs(label, where, outputs, refs, reference, strict):
    """check_close on every group; raises WrongResult when strict, else returns the first message."""
    for g, (out, ref) in enumerate(zip(outputs, refs)):
        ok, message = reference.check_close(out, ref)
        if not ok:
            text = f"{label}, {where}, group {g}: {message}"
            if strict:
                raise WrongResult(text)
            log(f"WARNING (not aborting): {text}")
            return text
    return "match"


# ---------------------------------------------------------------------------------------------------------------
# Exact fp16 dequantization (for cuBLAS and the emulation). Every e2m1 value times every e4m3 scale is exact in fp16
# (at most 2 significant bits times at most 4, a multiple of 2^-10 no larger than 6 * 448), so the fp16 operands
# hold exactly the values the kernel multiplies.


def plain_scales_from_blocked(blocked, rows, k):
    """float32 [rows, K/16] of batch 0 from the blocked view [32, 4, rest_mn, 4, rest_k, L] (csrc/group_table.h).

    Row r = (r // 128) * 128 + ((r % 128) // 32) * 32 + r % 32 sits at [r % 32, (r % 128) // 32, r // 128, ...], so
    ordering the dims (rest_mn, 4, 32) gives rows in order; the same holds for (rest_k, 4) and the scale columns.
    """
    sf = blocked[..., 0].to(torch.float32)  # [32, 4, rest_mn, 4, rest_k]
    rest_mn, rest_k = sf.shape[2], sf.shape[4]
    sf = sf.permute(2, 1, 0, 4, 3).reshape(rest_mn * 128, rest_k * 4)
    return sf[:rows, : k // 16]


def dequantize_fp16(packed, blocked_scales, rows, k, e2m1_table):
    """fp16 [rows, K] of batch 0: e2m1 values of packed [rows, K/2, L] times their blocked scales, exactly."""
    codes = packed.view(torch.uint8)[:, :, 0].long()
    low = e2m1_table[codes & 0xF]  # element 2i
    high = e2m1_table[codes >> 4]  # element 2i + 1
    values = torch.stack((low, high), dim=2).reshape(rows, k)
    scales = plain_scales_from_blocked(blocked_scales, rows, k).to(torch.float16)
    return values * scales.repeat_interleave(16, dim=1)


def e2m1_fp16_table(device, reference):
    return torch.tensor(reference.E2M1_VALUES, dtype=torch.float16, device=device)


def emulate(data, e2m1_table):
    """Torch emulation: dequantize with torch ops each call, then one fp16 matmul per group into c."""
    abc, _, sf_reordered, sizes = data
    for (a, b, c), (sfa, sfb), (m, n, k, l) in zip(abc, sf_reordered, sizes):
        a16 = dequantize_fp16(a, sfa, m, k, e2m1_table)
        b16 = dequantize_fp16(b, sfb, n, k, e2m1_table)
        c[:, :, 0].copy_(torch.matmul(a16, b16.t()))
    return [c for _, _, c in abc]


# ---------------------------------------------------------------------------------------------------------------
# The old Python hot path, modelled. Before the native module, the submission built the group table
# (csrc/group_table.h) in Python each call and launched the kernel on it in device memory. The model runs that same
# Python and torch work unchanged, then the bare launch (_C._launch_prepared) of the same call, prepared once by
# _C._prepare: a real launch of the same kernel, on a table the planner validated. The table built in Python is
# uploaded but not read by any kernel; nothing launches on an unchecked table.
#
# The launch it ends with differs a little from the retired one, not all in one direction: up to INLINE_CAPACITY
# groups the table travels in the kernel parameters (up to 4 KB instead of a pointer); beyond that the bare launch
# copies the planner's table through its ring (one more asynchronous copy and an event); the retired launch instead
# asked torch for the current stream and read the table tensor on every call. Each of these is well under the
# bare launch's own time, which the host table reports in its own column, and small against the Python work.


OLD_PATH_MODEL = ("the retired Python hot path's per-call work (group loop, 2x torch.tensor to the device, torch.empty, "
                  "2 slice copies into the table), then _C._launch_prepared of the same call prepared once")


def byte_step(tensor, dim, element_bytes):
    """Stride of dim in bytes, 0 for a dimension of size <= 1 (as csrc/planner.c writes it)."""
    return tensor.stride(dim) * element_bytes if tensor.size(dim) > 1 else 0


def old_python_hot_path(data, C, prepared):
    """The old hot path's host work on `data`, then the bare launch of `prepared` (= C._prepare(data)).

    Per call, as the retired submission did: one Python loop over the groups reading every pointer, stride and
    size into two nested lists (empty groups get no entry; tile_start counts 64 x 128 tiles), two
    torch.tensor(..., device=<the tensors' device>) (each a blocking host-to-device copy), one torch.empty for the
    [entries, 128]-byte table, two slice assignments that copy the 64-bit and 32-bit fields into it on the device,
    and a new list of the outputs. Then _C._launch_prepared(prepared) instead of the retired launch on the table.
    """
    abc, _, sf_reordered, sizes = data
    pointers_and_batch_strides, int32_fields = [], []
    tiles = 0
    for (a, b, c), (sfa, sfb), (m, n, k, l) in zip(abc, sf_reordered, sizes):
        if m == 0:  # empty groups get no entry
            continue
        pointers_and_batch_strides.append([
            a.data_ptr(), b.data_ptr(), sfa.data_ptr(), sfb.data_ptr(), c.data_ptr(),
            byte_step(a, 2, 1), byte_step(b, 2, 1), byte_step(c, 2, 2), byte_step(sfa, 5, 1), byte_step(sfb, 5, 1),
        ])  # fmt: skip
        int32_fields.append([
            m, n, k, l,
            byte_step(a, 0, 1), byte_step(b, 0, 1), byte_step(c, 0, 2),
            byte_step(sfa, 2, 1), byte_step(sfa, 4, 1), byte_step(sfb, 2, 1), byte_step(sfb, 4, 1),
            tiles,
        ])  # fmt: skip
        tiles += ceil_div(m, C.TILE_M) * ceil_div(n, C.TILE_N) * l
    entries = len(int32_fields)
    device = abc[0][0].device
    wide = torch.tensor(pointers_and_batch_strides, dtype=torch.int64, device=device)  # [G, 10]
    narrow = torch.tensor(int32_fields, dtype=torch.int32, device=device)  # [G, 12]
    table = torch.empty((entries, C.GROUP_ENTRY_BYTES), dtype=torch.uint8, device=device)
    table[:, :80] = wide.view(torch.uint8).view(entries, 80)
    table[:, 80:] = narrow.view(torch.uint8).view(entries, 48)
    C._launch_prepared(prepared)
    return [c for _, _, c in abc]


# ---------------------------------------------------------------------------------------------------------------
# Section 1: leaderboard-faithful GPU timing


def l2_flush_buffer(device_info):
    size = max(256 << 20, 8 * int(device_info.get("l2_bytes", 0)))
    return torch.empty(size, dtype=torch.uint8, device="cuda")


def harness_time(calls, flush, settings):
    """Per-call GPU microseconds of `calls` [(fn, arg), ...] run back to back, repeated like the leaderboard."""
    times = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(settings["max_repeats"]):
        torch.cuda.synchronize()
        flush.zero_()  # evict the previous repeat's operands from L2
        start.record()
        for fn, arg in calls:
            fn(arg)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(calls))
        if len(times) >= settings["min_repeats"]:
            mean = statistics.fmean(times)
            sem = statistics.stdev(times) / math.sqrt(len(times))
            if sem < TARGET_RELATIVE_SEM * mean:
                break
    mean = statistics.fmean(times)
    sem = statistics.stdev(times) / math.sqrt(len(times)) if len(times) > 1 else None
    return dict(mean_us=mean, min_us=min(times), sem_us=sem, repeats=len(times), times_us=times)


def kernel_variant(label, kernel, reference, data_module):
    """A column for a custom_kernel-like function: checked once per set (outputs poisoned first), strictly."""

    def setup(sets, refs):
        calls = []
        for i, (data, ref) in enumerate(zip(sets, refs)):
            data_module.poison_outputs(data)
            outputs = kernel(data)
            torch.cuda.synchronize()
            check_outputs(label, f"set {i}", outputs, ref, reference, strict=True)
            calls.append((kernel, data))
        return calls, "match"

    return label, setup, None


def bare_launch_variant(label, C, reference, data_module):
    """The same kernel launch with everything else done once per set beforehand (_C._prepare): parsing,
    validation, the group table and the launch configuration (kernel family, the Hopper kernel's schedule)."""

    def setup(sets, refs):
        calls = []
        for i, (data, ref) in enumerate(zip(sets, refs)):
            capsule = C._prepare(data)
            data_module.poison_outputs(data)
            C._launch_prepared(capsule)
            torch.cuda.synchronize()
            check_outputs(label, f"set {i}", [c for _, _, c in data[0]], ref, reference, strict=True)
            calls.append((C._launch_prepared, capsule))
        return calls, "match"

    return label, setup, None


def run_grouped_mm(call):
    """grouped_mm into its preallocated output: call = (grouped_mm, its five arguments, out)."""
    grouped_mm, args, out = call
    grouped_mm(*args, out_dtype=torch.float16, out=out)


def grouped_mm_variant(label, grouped_mm, from_leaderboard, reference):
    """grouped_mm (the MoE layout) on the same problems, each set converted once (moe.from_leaderboard, not timed),
    fp16 out, no alpha; checked strictly against the reference per group, outputs poisoned first."""

    def setup(sets, refs):
        calls = []
        for i, (data, ref) in enumerate(zip(sets, refs)):
            args = from_leaderboard(data)
            out = torch.full((args[0].shape[0], args[1].shape[1]), float("nan"), dtype=torch.float16, device="cuda")
            run_grouped_mm((grouped_mm, args, out))
            torch.cuda.synchronize()
            ends = [0] + args[4].tolist()
            outputs = [out[start:end].unsqueeze(2) for start, end in zip(ends, ends[1:])]
            check_outputs(label, f"set {i}", outputs, ref, reference, strict=True)
            calls.append((run_grouped_mm, (grouped_mm, args, out)))
        return calls, "match"

    return label, setup, None


def replay_graph(graph_and_operands):
    """Replays a captured graph; the tuple also keeps the tensors the graph reads alive."""
    graph_and_operands[0].replay()


def cublas_graph_variant(label, reference):
    """cuBLAS fp16 on operands dequantized once (not timed): per-group matmuls captured in one CUDA graph per set."""

    def setup(sets, refs):
        table = e2m1_fp16_table("cuda", reference)
        calls, status = [], "match"
        for i, (data, ref) in enumerate(zip(sets, refs)):
            abc, _, sf_reordered, sizes = data
            work = []
            for (a, b, _), (sfa, sfb), (m, n, k, _) in zip(abc, sf_reordered, sizes):
                a16 = dequantize_fp16(a, sfa, m, k, table)
                b16 = dequantize_fp16(b, sfb, n, k, table)
                out = torch.empty((m, n), dtype=torch.float16, device="cuda")
                work.append((a16, b16, out))

            def run(work=work):
                for a16, b16, out in work:
                    torch.matmul(a16, b16.t(), out=out)

            # Warm up on a side stream (cuBLAS handles and workspaces) before capturing, as torch's docs advise.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                run()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                run()
            for _, _, out in work:
                out.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            # Loose check: cuBLAS may reduce in reduced precision; report, do not abort.
            outputs = [out.unsqueeze(2) for _, _, out in work]
            message = check_outputs(label, f"set {i}", outputs, ref, reference, strict=False)
            if message != "match" and status == "match":
                status = message
            calls.append((replay_graph, (graph, work)))
        return calls, status

    return label, setup, None


def emulation_variant(label, reference, data_module, sets_limit):
    def setup(sets, refs):
        table = e2m1_fp16_table("cuda", reference)
        calls, status = [], "match"
        for i, (data, ref) in enumerate(zip(sets, refs)):
            data_module.poison_outputs(data)
            outputs = emulate(data, table)
            torch.cuda.synchronize()
            message = check_outputs(label, f"set {i}", outputs, ref, reference, strict=False)
            if message != "match" and status == "match":
                status = message
            calls.append((lambda d, t=table: emulate(d, t), data))
        return calls, status

    return label, setup, sets_limit


def check_dequantization(data, reference):
    """The fp16 operands given to cuBLAS and the emulation must equal the float64 reference's operands exactly."""
    table = e2m1_fp16_table("cuda", reference)
    abc, sfasfb, sf_reordered, sizes = data
    for g, ((a, b, _), (sfa, sfb), (sfa_r, sfb_r), (m, n, k, _)) in enumerate(zip(abc, sfasfb, sf_reordered, sizes)):
        for name, packed, plain, blocked, rows in (("a", a, sfa, sfa_r, m), ("b", b, sfb, sfb_r, n)):
            ours = dequantize_fp16(packed, blocked, rows, k, table).to(torch.float64)
            expected = reference.dequantize(packed, plain)[:, :, 0]
            if not torch.equal(ours, expected):
                raise WrongResult(f"fp16 dequantization of group {g} operand {name} differs from the reference")


def gpu_section(settings, variants, packages, flush, results):
    data_module, reference = packages
    rows = []
    results["gpu"] = rows
    shapes = [(str(i), m_list, n, k, True) for i, (m_list, n, k) in enumerate(BENCHMARK_SPECS, start=1)]
    shapes += [(name, m_list, n, k, False) for name, m_list, n, k in MOE_EXTRAS]
    for spec_number, (spec_index, m_list, n, k, benchmark) in enumerate(shapes, start=1):
        set_count = settings["sets"] if benchmark else min(MOE_EXTRA_SETS, settings["sets"])
        log(f"[gpu] spec {spec_index}: generating {set_count} input sets")
        sets = [
            data_module.generate_input(m_list, n, k, 1, seed=1000 * spec_number + i, device="cuda")
            for i in range(set_count)
        ]
        refs = [reference.ref_kernel(data) for data in sets]
        check_dequantization(sets[0], reference)
        problem_sizes = sets[0][3]
        flops = spec_flops(problem_sizes)
        compute_us = flops / FP16_PEAK_FLOPS * 1e6
        memory_us = spec_bytes(problem_sizes) / HBM_PEAK_BYTES_PER_S * 1e6
        row = dict(
            spec=spec_index,
            benchmark=benchmark,
            groups=len(m_list),
            m=list(m_list),
            n=n,
            k=k,
            l=1,
            flops=flops,
            bytes=spec_bytes(problem_sizes),
            compute_floor_us=compute_us,
            memory_floor_us=memory_us,
            sol_us=max(compute_us, memory_us),  # speed of light: the larger floor binds
            variants={},
        )
        rows.append(row)
        for label, setup, sets_limit in variants:
            use = sets if sets_limit is None else sets[:sets_limit]
            use_refs = refs[: len(use)]
            log(f"[gpu] spec {spec_index}: {label} on {len(use)} sets")
            calls, check = setup(use, use_refs)
            timing = harness_time(calls, flush, settings)
            timing.update(
                sets=len(use),
                check=check,
                tflops=flops / (timing["mean_us"] * 1e-6) / 1e12,
                pct_sol=100.0 * row["sol_us"] / timing["mean_us"],
            )
            row["variants"][label] = timing
            del calls
        del sets, refs
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    labels = [label for label, _, _ in variants]
    benchmarks = [row for row in rows if row["benchmark"]]
    results["gpu_geomean_us"] = {
        label: geomean([row["variants"][label]["mean_us"] for row in benchmarks if label in row["variants"]])
        for label in labels
    }
    results["gpu_geomean_us"]["speed of light"] = geomean([row["sol_us"] for row in benchmarks])


# ---------------------------------------------------------------------------------------------------------------
# Section 2: host time per call with the GPU kept busy


class GpuNotBusy(Exception):
    pass


def sleep_cycles_per_second():
    """Clock rate seen by torch.cuda._sleep, measured with events."""
    torch.cuda._sleep(1000)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 20_000_000
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    torch.cuda.synchronize()
    rate = cycles / (start.elapsed_time(end) * 1e-3)
    if not 1e8 < rate < 1e10:  # implausible clock: fall back to ~2 GHz; busy_window_seconds still verifies
        log(f"[host] measured sleep clock {rate:.3g} cycles/s is implausible; assuming 2e9")
        rate = 2e9
    return rate


def ring_waits(C):
    return C._stats()["ring_waits"] if hasattr(C, "_stats") else 0


def busy_window_seconds(fn, arg, count, cycles_per_s, estimate_s, C):
    """Host seconds for `count` calls while a sleep kernel queued ahead of them keeps the GPU busy throughout."""
    sleep_s = max(2 * count * estimate_s, 2e-3)
    for _ in range(5):
        torch.cuda.synchronize()
        torch.cuda._sleep(int(sleep_s * cycles_per_s))
        sleep_done = torch.cuda.Event()
        sleep_done.record()
        waits_before = ring_waits(C)
        start = time.perf_counter()
        for _ in range(count):
            fn(arg)
        elapsed = time.perf_counter() - start
        still_busy = not sleep_done.query()
        waited = ring_waits(C) - waits_before
        torch.cuda.synchronize()
        if still_busy and waited == 0:
            return elapsed
        sleep_s *= 2
    raise GpuNotBusy(f"the GPU went idle during {count} calls even with a {sleep_s * 1e3:.1f} ms sleep")


def host_busy_us(variants, calls, window, repeats, cycles_per_s, C):
    """Host microseconds per call of each variant {name: (fn, arg)}, in windows of `window` calls behind a sleep.

    The variants take turns within every repeat (in alternating order), so the host's drift between machine
    states hits them alike and a difference of two variants is taken per repeat (paired); per variant, the
    median over repeats. If the host blocks inside a window anyway (launch queue full, ring slot wait), the
    window is halved.
    """
    estimates = {}
    for name, (fn, arg) in variants.items():
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(10):
            fn(arg)
        estimates[name] = (time.perf_counter() - start) / 10
    torch.cuda.synchronize()
    while True:
        try:
            per_repeat = {name: [] for name in variants}
            for repeat in range(repeats):
                order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
                for name in order:
                    fn, arg = variants[name]
                    total, done = 0.0, 0
                    while done < calls:
                        count = min(window, calls - done)
                        total += busy_window_seconds(fn, arg, count, cycles_per_s, estimates[name], C)
                        done += count
                    per_repeat[name].append(total / calls * 1e6)
            return {name: dict(median_us=statistics.median(values), repeats_us=values, calls=calls, window=window,
                               method="busy GPU, variants interleaved per repeat")
                    for name, values in per_repeat.items()}
        except GpuNotBusy as error:
            if window <= 4:
                raise
            log(f"[host] {error}; halving the window from {window}")
            window //= 2


def paired_differences_us(first, second, frame=None, no_frame=None):
    """Per repeat, first - second, all from one host_busy_us call; with frame and no_frame,
    first - second - (frame - no_frame): a Python function's own cost taken out of first."""
    if frame is None:
        return [a - b for a, b in zip(first["repeats_us"], second["repeats_us"])]
    return [a - b - (f - g) for a, b, f, g in zip(first["repeats_us"], second["repeats_us"], frame["repeats_us"],
                                                  no_frame["repeats_us"])]


def paired_difference_us(first, second, frame=None, no_frame=None):
    """Median over repeats of paired_differences_us."""
    return statistics.median(paired_differences_us(first, second, frame, no_frame))


def host_idle_us(fn, arg, calls, repeats):
    """Median over repeats of host microseconds per call, each call starting on an idle stream.

    For a path that synchronizes the stream itself (torch.tensor(..., device="cuda") does a blocking copy): the
    preceding synchronize is not timed, so only the path's own host work and copy round trips count.
    """
    per_repeat = []
    for _ in range(repeats):
        total = 0.0
        for _ in range(calls):
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn(arg)
            total += time.perf_counter() - start
        per_repeat.append(total / calls * 1e6)
    torch.cuda.synchronize()
    return dict(median_us=statistics.median(per_repeat), repeats_us=per_repeat, calls=calls, window=1,
                method="idle stream per call (untimed synchronize before each call)")


def blocks_on_stream(fn, arg, cycles_per_s):
    """Whether one call waits for work already queued on the stream (a 50 ms sleep)."""
    fn(arg)  # warm the allocator
    torch.cuda.synchronize()
    sleep_s = 0.05
    torch.cuda._sleep(int(sleep_s * cycles_per_s))
    start = time.perf_counter()
    fn(arg)
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed > sleep_s / 2, elapsed * 1e6


def host_inputs(data_module):
    """(name, GPU table's spec label, data, whether to model the old Python hot path) for every benchmark spec and
    MoE extra, made one at a time. The old path is modelled on spec 1 and the G=64 extra only: from an idle stream
    it takes most of a minute per input."""
    for i, (m_list, n, k) in enumerate(BENCHMARK_SPECS, start=1):
        data = data_module.generate_input(m_list, n, k, 1, seed=9000 + i, device="cuda")
        yield f"spec {i} (G={len(m_list)})", str(i), data, i == 1
    for j, (name, m_list, n, k) in enumerate(MOE_EXTRAS):
        data = data_module.generate_input(m_list, n, k, 1, seed=9010 + j, device="cuda")
        yield name, name, data, name.startswith("G=64")


# The kernel families whose host path is timed, with the GPU table's label for each.
HOST_FAMILIES = [("auto", "ours")]


PROFILER_NAMING_CALLS = 200_000


def host_section(settings, C, packages, results):
    data_module, reference = packages
    cycles_per_s = sleep_cycles_per_second()
    results["sleep_cycles_per_s"] = cycles_per_s
    rows = []
    results["host"] = rows
    results["old_python_hot_path_model"] = OLD_PATH_MODEL
    inline_capacity = getattr(C, "INLINE_CAPACITY", 30)
    calls, repeats = settings["host_calls"], settings["host_repeats"]
    families = HOST_FAMILIES
    for name, spec, data, model_old_path in host_inputs(data_module):
        nonempty = sum(1 for m, _, _, _ in data[3] if m > 0)
        ring = nonempty > inline_capacity
        log(f"[host] {name}: {len(data[3])} groups, {nonempty} non-empty, {'ring' if ring else 'inline'} table")
        ref = reference.ref_kernel(data)
        window = C.RING_SLOTS if ring else calls
        for choice, label in families:
            C._set_kernel(choice)
            try:
                # Correctness of this family here, and that the old-path model really launches it on this data:
                # both checked against the reference, outputs poisoned before each. The prepared call keeps the
                # family chosen when it was prepared.
                data_module.poison_outputs(data)
                outputs = C.custom_kernel(data)
                torch.cuda.synchronize()
                check_outputs(label, name, outputs, ref, reference, strict=True)
                capsule = C._prepare(data)
                stats_before = C._stats() if hasattr(C, "_stats") else None
                timed = host_busy_us({"custom": (C.custom_kernel, data), "bare": (C._launch_prepared, capsule)},
                                     calls, window, repeats, cycles_per_s, C)
                custom, bare = timed["custom"], timed["bare"]
                row = dict(
                    input=name,
                    spec=spec,
                    kernel=label,
                    groups=len(data[3]),
                    nonempty_groups=nonempty,
                    table_path="ring" if ring else "inline",
                    custom_kernel=custom,
                    bare_launch=bare,
                    custom_minus_bare_us=paired_difference_us(custom, bare),
                    old_python_hot_path=None,
                    old_path_blocks_on_stream=None,
                    old_path_probe_us=None,
                    custom_kernel_idle_stream=None,
                    old_over_custom=None,
                )
                if model_old_path and choice == "auto":
                    def old_path(d, capsule=capsule):
                        return old_python_hot_path(d, C, capsule)

                    data_module.poison_outputs(data)
                    old_outputs = old_path(data)
                    torch.cuda.synchronize()
                    check_outputs("old Python hot path model", name, old_outputs, ref, reference, strict=True)
                    old_blocks, old_probe_us = blocks_on_stream(old_path, data, cycles_per_s)
                    if old_blocks:
                        # A busy GPU would stall the first torch.tensor copy; time every path from an idle stream.
                        old = host_idle_us(old_path, data, calls, repeats)
                        row["custom_kernel_idle_stream"] = host_idle_us(C.custom_kernel, data, calls, repeats)
                    else:
                        old = host_busy_us({"old": (old_path, data)}, calls, window, repeats, cycles_per_s, C)["old"]
                    row.update(old_python_hot_path=old, old_path_blocks_on_stream=old_blocks,
                               old_path_probe_us=old_probe_us, old_over_custom=old["median_us"] / custom["median_us"])
                    del old_path, old_outputs
                row.update(launch_stats_before=stats_before,
                           launch_stats_after=C._stats() if hasattr(C, "_stats") else None)
                rows.append(row)
                del capsule, outputs
            finally:
                C._set_kernel("auto")
        del data, ref
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    if hasattr(C, "grouped_mm"):
        results["grouped_mm_host"] = grouped_mm_host_rows(settings, C, packages, cycles_per_s)
    if hasattr(C, "_scope_cost"):
        # What naming each call for torch.profiler and NVTX costs while no profiler runs (inside (a) above).
        results["profiler_naming_ns"] = min(C._scope_cost(PROFILER_NAMING_CALLS) for _ in range(5))


def grouped_mm_host_rows(settings, C, packages, cycles_per_s):
    """Host time of grouped_mm at E = 8 (benchmark spec 1) and E = 64 (the G=64 extra) in the MoE layout: into a
    given out, with a new out, and the bare launch of the same call (_grouped_mm_prepare: arguments checked and the
    launch resolved once), GPU kept busy; each result checked first."""
    from nvfp4_group_gemm import moe
    data_module, reference = packages
    calls, repeats = settings["host_calls"], settings["host_repeats"]
    rows = []
    inputs = [("E=8 (spec 1)", BENCHMARK_SPECS[0], 9001), ("E=64 (G=64 extra)", MOE_EXTRAS[1][1:], 9011)]
    for name, (m_list, n, k), seed in inputs:
        data = data_module.generate_input(m_list, n, k, 1, seed=seed, device="cuda")
        ref = reference.ref_kernel(data)
        args = moe.from_leaderboard(data)
        out = torch.full((sum(m_list), n), float("nan"), dtype=torch.float16, device="cuda")
        C.grouped_mm(*args, out_dtype=torch.float16, out=out)
        torch.cuda.synchronize()
        ends = [0] + args[4].tolist()
        check_outputs("grouped_mm", name, [out[a:b].unsqueeze(2) for a, b in zip(ends, ends[1:])], ref, reference,
                      strict=True)
        capsule = C._grouped_mm_prepare(*args, out_dtype=torch.float16, out=out)

        def into_out(args, out=out):
            return C.grouped_mm(*args, out_dtype=torch.float16, out=out)

        def new_out(args):
            return C.grouped_mm(*args, out_dtype=torch.float16)

        # The two functions above are this benchmark's, not grouped_mm's: a Python frame, the star-unpacking and the
        # keyword arguments. The same functions around a C function that takes arguments the way grouped_mm does
        # and ignores them time that part alone, so it can be taken out of grouped_mm's cost (a call written inline
        # in user code has no such frame).
        ignore_arguments = C._ignore_arguments

        def into_out_frame(args, out=out):
            return ignore_arguments(*args, out_dtype=torch.float16, out=out)

        def new_out_frame(args):
            return ignore_arguments(*args, out_dtype=torch.float16)

        timed = host_busy_us({"out": (into_out, args), "new": (new_out, args),
                              "bare": (C._grouped_mm_launch_prepared, capsule),
                              "out_frame": (into_out_frame, args), "new_frame": (new_out_frame, args),
                              "no_frame": (ignore_arguments, args)},
                             calls, calls, repeats, cycles_per_s, C)
        rows.append(dict(input=name, experts=len(m_list), into_out=timed["out"], new_out=timed["new"],
                         bare_launch=timed["bare"], into_out_frame=timed["out_frame"], new_out_frame=timed["new_frame"],
                         no_frame=timed["no_frame"],
                         out_minus_bare_us=paired_difference_us(timed["out"], timed["bare"]),
                         new_minus_bare_us=paired_difference_us(timed["new"], timed["bare"]),
                         out_frame_us=paired_difference_us(timed["out_frame"], timed["no_frame"]),
                         new_frame_us=paired_difference_us(timed["new_frame"], timed["no_frame"]),
                         out_own_us=paired_difference_us(timed["out"], timed["bare"], timed["out_frame"],
                                                         timed["no_frame"]),
                         out_own_quartiles_us=statistics.quantiles(paired_differences_us(
                             timed["out"], timed["bare"], timed["out_frame"], timed["no_frame"]), n=4),
                         new_own_us=paired_difference_us(timed["new"], timed["bare"], timed["new_frame"],
                                                         timed["no_frame"])))
        del capsule, data, ref, args, out
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Output


def format_us(value):
    return f"{value:9.1f}" if value is not None else f"{'-':>9}"


def print_tables(results):
    device = results.get("device", {})
    print()
    print(f"device: {device.get('name', '?')} (sm_{device.get('major', '?')}{device.get('minor', '?')}), "
          f"torch {results['torch']}, settings: {results['settings']}")
    if results.get("gpu"):
        print()
        print("GPU time per call, leaderboard harness (L2 flushed, sets back to back); us; SoL = the larger of FLOPs / "
              "989 TFLOP/s (fp16) and bytes / 4.8 TB/s")
        header = f"{'spec':<15}{'shape':<26}{'variant':<40}{'mean':>9}{'min':>9}{'TFLOP/s':>9}{'%SoL':>7}{'reps':>6}"
        print(header)
        print("-" * len(header))
        for row in results["gpu"]:
            shape = f"G={row['groups']} N={row['n']} K={row['k']}"
            floors = f"speed of light ({'compute' if row['compute_floor_us'] >= row['memory_floor_us'] else 'memory'})"
            print(f"{row['spec']:<15}{shape:<26}{floors:<40}{format_us(row['sol_us'])}"
                  f"   compute {row['compute_floor_us']:.1f}, memory {row['memory_floor_us']:.1f}")
            for label, t in row["variants"].items():
                note = "" if t["check"] == "match" else "  (check failed, see JSON)"
                print(
                    f"{'':<15}{'':<26}{label:<40}{format_us(t['mean_us'])}{format_us(t['min_us'])}"
                    f"{t['tflops']:9.1f}{t['pct_sol']:7.1f}{t['repeats']:6d}{note}"
                )
        geo = results.get("gpu_geomean_us", {})
        if geo:
            print("geomean over the 4 benchmark specs, MoE extras not included (us): " + ", ".join(f"{k}: {v:.1f}" for k, v in geo.items()))
    if results.get("host"):
        print()
        print("Host time per call (us, median of repeats; (a)-(b) paired per repeat), GPU kept busy unless noted; "
              "GPU: that kernel's time per call in the table above")
        header = (f"{'input':<15}{'kernel':<32}{'table':<8}{'(a) custom_kernel':>19}{'(b) bare launch':>17}"
                  f"{'(a)-(b)':>9}{'GPU':>9}{'(c) old path model':>21}{'(c)/(a)':>9}")
        print(header)
        print("-" * len(header))
        gpu_us = {(row["spec"], label): t["mean_us"] for row in results.get("gpu", []) for label, t in row["variants"].items()}
        for row in results["host"]:
            old = row.get("old_python_hot_path")
            gpu = gpu_us.get((row.get("spec"), row.get("kernel", "ours")))
            print(
                f"{row['input']:<15}{row.get('kernel', 'ours'):<32}{row['table_path']:<8}"
                f"{row['custom_kernel']['median_us']:19.2f}{row['bare_launch']['median_us']:17.2f}"
                f"{row['custom_minus_bare_us']:9.2f}{format_us(gpu)}"
                + (f"{old['median_us']:21.2f}{row['old_over_custom']:9.1f}" if old else f"{'-':>21}{'-':>9}")
            )
        print(f"(c): {OLD_PATH_MODEL}")
        if results.get("grouped_mm_host"):
            print()
            print("grouped_mm host time per call (us, median of repeats, GPU kept busy; differences paired per repeat)")
            header = (f"{'input':<20}{'(a) into out':>14}{'(b) new out':>13}{'(c) bare launch':>17}{'(a)-(c)':>9}"
                      f"{'(b)-(c)':>9}{'frame (a)':>11}{'frame (b)':>11}{'(a)-(c)-frame':>15}{'its quartiles':>15}"
                      f"{'(b)-(c)-frame':>15}")
            print(header)
            print("-" * len(header))
            for row in results["grouped_mm_host"]:
                print(f"{row['input']:<20}{row['into_out']['median_us']:14.2f}{row['new_out']['median_us']:13.2f}"
                      f"{row['bare_launch']['median_us']:17.2f}{row['out_minus_bare_us']:9.2f}"
                      f"{row['new_minus_bare_us']:9.2f}{row['out_frame_us']:11.2f}{row['new_frame_us']:11.2f}"
                      f"{row['out_own_us']:15.2f}"
                      f"{row['out_own_quartiles_us'][0]:9.2f}..{row['out_own_quartiles_us'][2]:4.2f}"
                      f"{row['new_own_us']:15.2f}")
            print("frame: what this benchmark's Python function around (a) or (b) adds (a frame, *args, the keywords), "
                  "timed with _C._ignore_arguments in grouped_mm's place, less a direct call of it; (a)-(c)-frame is "
                  "grouped_mm's own cost above the bare launch, as a call written inline in user code pays it (its "
                  "quartiles over the repeats: each repeat's host state moves the launch by a microsecond or more)")
        if results.get("profiler_naming_ns") is not None:
            print(f"profiler naming (the op nvfp4_group_gemm::custom_kernel and its NVTX range), no profiler running: "
                  f"{results['profiler_naming_ns']:.1f} ns per call (_C._scope_cost, min of 5 x {PROFILER_NAMING_CALLS})")
        for row in results["host"]:
            if row.get("old_path_blocks_on_stream"):
                idle = row["custom_kernel_idle_stream"]["median_us"]
                print(f"note, {row['input']}: (c) synchronizes the stream (torch.tensor to CUDA), so it was timed from "
                      f"an idle stream per call; (a) timed that way: {idle:.2f} us. In the leaderboard loop (c) also "
                      f"waits for the previous kernel each call.")
    if results.get("error"):
        print()
        print(f"ERROR: {results['error']}")
    print(f"json: {results['json_path']}")


def write_json(results):
    path = pathlib.Path(results["json_path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: the benchmark needs one", file=sys.stderr)
        return 2

    import nvfp4_group_gemm
    from nvfp4_group_gemm import _C, data as data_module, reference

    settings = settings_for(args)
    device_index = torch.cuda.current_device()
    results = dict(
        command=shlex.join([sys.executable] + sys.argv),
        cwd=os.getcwd(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        device=_C.device_info(device_index),
        device_index=device_index,
        settings=settings,
        quick=args.quick,
        emulation=args.emulation,
        fp16_peak_flops=FP16_PEAK_FLOPS,
        fp16_reduced_precision_reduction=torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        tile=[_C.TILE_M, _C.TILE_N],
        json_path=str(json_path(args)),
    )
    packages = (data_module, reference)

    # Kernel columns, timed through the leaderboard call. A second kernel is one more line here.
    def forced(choice):
        def kernel(data):
            """custom_kernel with one kernel family forced (the kernel choice is read at each launch)."""
            _C._set_kernel(choice)
            try:
                return nvfp4_group_gemm.custom_kernel(data)
            finally:
                _C._set_kernel("auto")

        return kernel

    kernels = [
        ("ours", nvfp4_group_gemm.custom_kernel),
        ("portable kernel (forced)", forced("portable")),
    ]
    variants = [kernel_variant(label, fn, reference, data_module) for label, fn in kernels]
    variants.append(bare_launch_variant("ours, bare launch (_launch_prepared)", _C, reference, data_module))
    from nvfp4_group_gemm import moe
    variants.append(grouped_mm_variant("grouped_mm (MoE layout, fp16 out)", _C.grouped_mm, moe.from_leaderboard,
                                       reference))
    variants.append(cublas_graph_variant("cuBLAS fp16 (pre-dequantized, graph)", reference))
    if args.emulation:
        variants.append(emulation_variant("torch emulation", reference, data_module, settings["emulation_sets"]))

    status = 0
    try:
        if not args.host_only:
            flush = l2_flush_buffer(results["device"])
            gpu_section(settings, variants, packages, flush, results)
            del flush
            torch.cuda.empty_cache()
        host_section(settings, _C, packages, results)
    except WrongResult as error:
        results["error"] = f"WRONG RESULT: {error}"
        log(f"\n*** WRONG RESULT: {error} ***\n")
        status = 1
    except Exception as error:
        # Keep what was measured: write it and print it, then fail with the traceback.
        results["error"] = f"{type(error).__name__}: {error}"
        write_json(results)
        try:
            print_tables(results)
        except Exception:
            pass
        raise
    results["stats"] = _C._stats() if hasattr(_C, "_stats") else None
    write_json(results)
    print_tables(results)
    return status


if __name__ == "__main__":
    sys.exit(main())
