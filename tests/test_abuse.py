"""Proof under abuse on the GPU: generated valid calls against the exact reference with guard regions, threads and
streams, graph replays interleaved with calls, a soak of many calls with memory and reference counts sampled, and
CUDA failures (memory exhausted, no device) in child processes; the sticky error of both entry points is
tests/test_gpu.py's test_cuda_error_surfaces_as_runtime_error.

Counts: NVFP4_ABUSE_CALLS (generated valid calls of custom_kernel; grouped_mm gets half), NVFP4_ABUSE_MAX_GROUPS
(custom_kernel's largest generated G), NVFP4_SOAK_CALLS (calls per entry point in the soak; `make soak` runs 10^6).
The defaults keep `make test` to a few minutes; `make fuzz-gpu` runs 2,000 generated calls of custom_kernel and 1,000
of grouped_mm over four processes with their own seeds.
"""

import gc
import math
import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis", reason="the generated calls need hypothesis (make test installs it)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nvfp4_group_gemm import _C, custom_kernel, grouped_mm, moe  # noqa: E402
from nvfp4_group_gemm.data import generate_input  # noqa: E402
from nvfp4_group_gemm.reference import check_close, ref_kernel  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = int(os.environ.get("NVFP4_ABUSE_CALLS", "300"))
# custom_kernel's generated calls draw G up to this. Checking a call launches ~15 small torch kernels per group, and
# under a sanitizer each launch costs milliseconds, so `make sanitize` lowers it.
MAX_GROUPS = int(os.environ.get("NVFP4_ABUSE_MAX_GROUPS", "300"))
SOAK_CALLS = int(os.environ.get("NVFP4_SOAK_CALLS", "20000"))
# A fixed example sequence by default; NVFP4_ABUSE_SEED draws another, so that processes with different seeds
# share a long run (make fuzz-gpu).
ABUSE_SEED = os.environ.get("NVFP4_ABUSE_SEED")
GENERATED = settings(max_examples=CALLS, derandomize=ABUSE_SEED is None, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))
generated_seed = hypothesis.seed(int(ABUSE_SEED)) if ABUSE_SEED is not None else (lambda test: test)
OPERAND_BYTES = 1 << 21   # packed a and b of one generated call: drawing them on the CPU takes ~60 ms
REFERENCE_MACS = 1 << 26  # multiply-adds of one generated call, so that the float64 reference stays quick
GUARD = 256               # guard elements before and after each output, and the padding columns of c


@pytest.fixture(params=["auto", "portable"])
def family(request):
    _C._set_kernel(request.param)
    yield request.param
    _C._set_kernel("auto")


# ---- generated valid calls ----


@st.composite
def problem(draw):
    """(m, n, k, l) lists within the byte and multiply-add budgets: G 1..300 (MAX_GROUPS), M 0..600, N 1..4096,
    K 64..8192."""
    groups = draw(st.integers(1, MAX_GROUPS))
    l = draw(st.integers(1, 3))
    m = [draw(st.integers(0, 600)) for _ in range(groups)]
    n = [draw(st.integers(1, 4096)) for _ in range(groups)]
    k = [64 * draw(st.integers(1, 128)) for _ in range(groups)]
    # Shrink to the budgets: K first (a common factor of bytes and work), then N, then M; every size stays >= 1
    # (M >= 0) and K a multiple of 64.
    def over():
        return (sum((mm + nn) * kk // 2 for mm, nn, kk in zip(m, n, k)) * l > OPERAND_BYTES or
                sum(mm * nn * kk for mm, nn, kk in zip(m, n, k)) * l > REFERENCE_MACS)
    while over() and max(k) > 64:
        k = [max(64, kk // 2 // 64 * 64) for kk in k]
    while over() and max(n) > 1:
        n = [max(1, nn // 2) for nn in n]
    while over() and max(m) > 0:
        m = [mm // 2 for mm in m]
    return m, n, k, l


calls_checked = {}


def count_checked(entry_point):
    """Counts the calls checked; every 100th prints a line (seen with pytest -s, as `make fuzz-gpu` runs it), so that
    a long run that is stopped still says how far it got."""
    calls_checked[entry_point] = calls_checked.get(entry_point, 0) + 1
    if calls_checked[entry_point] % 100 == 0:
        print(f"{entry_point}: {calls_checked[entry_point]} generated calls checked", file=sys.stderr, flush=True)


def guarded_outputs(data, padding):
    """Replaces each c by a view into a NaN-filled buffer with GUARD elements before and after it and `padding`
    extra columns per row; returns (buffer, view) pairs."""
    abc = []
    guards = []
    for (a, b, c), (m, n, _, l) in zip(data[0], data[3]):
        row = n + padding
        buffer = torch.full((2 * GUARD + l * m * row,), float("nan"), dtype=torch.float16, device=c.device)
        view = buffer[GUARD:GUARD + l * m * row].view(l, m, row)[:, :, :n].permute(1, 2, 0)
        abc.append((a, b, view))
        guards.append((buffer, view))
    return (abc, data[1], data[2], data[3]), guards


def guards_written(buffer, view):
    """How many elements of the buffer outside the view's elements are no longer NaN (a tensor on the device)."""
    inside = torch.zeros_like(buffer, dtype=torch.bool)
    start = view.storage_offset() - buffer.storage_offset()
    inside.as_strided(view.shape, view.stride(), start).fill_(True)
    return (~inside & ~buffer.isnan()).sum()


def moved_to(data, device):
    """The 4-tuple with a, b, c and the blocked scales on `device`, strides kept (the plain scales stay on the CPU, as
    the leaderboard has them)."""
    def move(t):  # fp4 and fp8 cross devices as their bytes
        moved = t.view(torch.uint8).to(device).view(t.dtype) if t.element_size() == 1 else t.to(device)
        assert moved.stride() == t.stride(), "the copy must keep the leaderboard's strides"
        return moved

    abc, sfasfb, sfasfb_reordered, sizes = data
    return ([tuple(move(t) for t in group) for group in abc], sfasfb,
            [tuple(move(t) for t in group) for group in sfasfb_reordered], sizes)


def host_output(buffer, view):
    """(the buffer copied to the CPU, the output's view of that copy)."""
    host = buffer.cpu()
    return host, host.as_strided(view.shape, view.stride(), view.storage_offset() - buffer.storage_offset())


@generated_seed
@GENERATED
@given(problem(), st.integers(0, 9), st.integers(0, 2 ** 31))
def test_generated_valid_calls_match_the_reference(sizes, padding, seed):
    m, n, k, l = sizes
    # Inputs drawn and the reference computed on the CPU, the outputs checked there: on the GPU the same work is
    # ~80 small torch launches per group, which set the pace of a long run (and of one under a sanitizer).
    host_data = generate_input(m, n, k, l, seed=seed, full_range=True, device="cpu")
    references = ref_kernel(host_data)
    data, guards = guarded_outputs(moved_to(host_data, "cuda"), padding)
    custom_kernel(data)
    for g, ((buffer, view), ref) in enumerate(zip(guards, references)):
        host, out = host_output(buffer, view)
        if torch.isclose(out.double(), ref.double(), rtol=1e-3, atol=1e-3).all() and guards_written(host, out) == 0:
            continue
        ok, message = check_close(out, ref)
        assert ok, f"group {g} of {len(m)} (M, N, K, L = {data[3][g]}): {message}"
        assert guards_written(host, out) == 0, f"group {g}: the call wrote outside its output"
    count_checked("custom_kernel")


@generated_seed
@settings(GENERATED, max_examples=max(1, CALLS // 2))
@given(st.lists(st.integers(0, 600), min_size=1, max_size=256), st.integers(1, 4096), st.integers(1, 64),
       st.sampled_from([torch.bfloat16, torch.float16]), st.booleans(), st.integers(0, 2 ** 31))
def test_generated_grouped_mm_calls_match_the_reference(m, n, k_blocks, out_dtype, with_alpha, seed):
    k = 64 * k_blocks
    while sum(m) * n * k > REFERENCE_MACS // 8 and (n > 1 or k > 64 or any(m)):  # the reference runs on the CPU
        n, k, m = max(1, n // 2), max(64, k // 2 // 64 * 64), [mm // 2 for mm in m]
    from test_moe import assert_matches, magnitudes, moe_inputs
    args, _ = moe_inputs(m, n, k, seed=seed % 1000, spare_scale_rows=128)
    alpha = torch.rand(len(m), generator=torch.Generator().manual_seed(seed)) * 4 if with_alpha else None
    expected = moe.reference(*args, alpha=alpha, out_dtype=out_dtype)
    cuda = tuple(t.view(torch.uint8).cuda().view(t.dtype) if t.element_size() == 1 else t.cuda() for t in args)
    tokens = sum(m)
    buffer = torch.full((2 * GUARD + tokens * n,), float("nan"), dtype=out_dtype, device="cuda")
    out = buffer[GUARD:GUARD + tokens * n].view(tokens, n)
    grouped_mm(*cuda, alpha=None if alpha is None else alpha.cuda(), out_dtype=out_dtype, out=out)
    torch.cuda.synchronize()
    assert_matches(out, expected, magnitudes(args, alpha), k)
    assert buffer[:GUARD].isnan().all() and buffer[GUARD + tokens * n:].isnan().all(), "a call wrote outside out"
    count_checked("grouped_mm")


# ---- threads and streams ----

THREADS = 8


def run_threads(work):
    errors = []

    def guarded(i):
        try:
            work(i)
        except BaseException as error:  # reported by the main thread
            errors.append((i, error))

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_threads_each_on_its_own_stream(family):
    inputs = [generate_input([20 * i + 1, 64, 130], [128, 72, 200], [128, 256, 64], seed=i, full_range=True)
              for i in range(THREADS)]
    expected = [ref_kernel(data) for data in inputs]

    def work(i):
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for call in range(500):
                for _, _, c in inputs[i][0]:
                    c.fill_(float("nan"))
                outputs = custom_kernel(inputs[i])
                if call % 100 == 99:
                    stream.synchronize()
                    for out, ref in zip(outputs, expected[i]):
                        assert check_close(out, ref)[0]
        stream.synchronize()

    run_threads(work)


def test_threads_share_inputs_and_write_their_own_outputs(family):
    shared = generate_input([100, 7, 250], [256, 128, 64], [256, 128, 512], seed=40, full_range=True)
    expected = ref_kernel(shared)
    outputs = [[torch.empty_like(c) for _, _, c in shared[0]] for _ in range(THREADS)]

    def work(i):
        data = ([(a, b, c) for (a, b, _), c in zip(shared[0], outputs[i])], shared[1], shared[2], shared[3])
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for _ in range(300):
                for c in outputs[i]:
                    c.fill_(float("nan"))
                custom_kernel(data)
        stream.synchronize()
        for out, ref in zip(outputs[i], expected):
            assert check_close(out, ref)[0]

    run_threads(work)


def test_calls_interleaved_with_graph_replays_on_other_streams(family):
    captured = generate_input([64, 200], [128, 256], [256, 128], seed=50, full_range=True)
    moe_args = moe.from_leaderboard(generate_input([30, 0, 90], 192, 256, seed=51, full_range=True))
    moe_out = torch.empty(120, 192, dtype=torch.bfloat16, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        custom_kernel(captured)
        grouped_mm(*moe_args, out=moe_out)
    side.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
        custom_kernel(captured)
        grouped_mm(*moe_args, out=moe_out)
    expected = ref_kernel(captured)
    moe_expected = moe_out.clone()
    live = [generate_input([10 * i + 3, 96], [64, 136], [128, 64], seed=60 + i) for i in range(THREADS - 1)]
    live_expected = [ref_kernel(data) for data in live]

    def work(i):
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for _ in range(200):
                if i == 0:
                    for _, _, c in captured[0]:
                        c.fill_(float("nan"))
                    moe_out.fill_(float("nan"))
                    graph.replay()
                else:
                    custom_kernel(live[i - 1])
        stream.synchronize()
        if i == 0:
            for (_, _, c), ref in zip(captured[0], expected):
                assert check_close(c, ref)[0]
            assert torch.equal(moe_out, moe_expected)
        else:
            for (_, _, c), ref in zip(live[i - 1][0], live_expected[i - 1]):
                assert check_close(c, ref)[0]

    run_threads(work)


# ---- soak ----


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_soak_memory_and_references_stay_flat():
    """SOAK_CALLS calls of each entry point over mixed shapes (by value and through the ring, both families):
    after a warm-up, host RSS, torch's CUDA memory and the device's free memory stay within bounds and every
    input's reference count is unchanged. Prints the samples (make soak records them)."""
    shapes = [([64, 128], [128, 256], [256, 128]), ([16] * 40, [64] * 40, [64] * 40), ([300], [512], [1024])]
    inputs = [generate_input(*shape, seed=70 + i) for i, shape in enumerate(shapes)]
    moe_inputs = [moe.from_leaderboard(generate_input([40, 0, 9, 120], 256, 512, seed=80))]
    moe_out = torch.empty(169, 256, dtype=torch.bfloat16, device="cuda")
    objects = [t for data in inputs for group in data[0] for t in group] + [t for args in moe_inputs for t in args]
    objects += [moe_out] + list(inputs)
    references = [sys.getrefcount(o) for o in objects]

    def sample():
        torch.cuda.synchronize()
        gc.collect()
        return resident_bytes(), torch.cuda.memory_allocated(), torch.cuda.mem_get_info()[0]

    def calls(count):
        for i in range(count):
            _C._set_kernel("portable" if i % 7 == 6 else "auto")
            custom_kernel(inputs[i % len(inputs)])
            grouped_mm(*moe_inputs[0], out=moe_out)
            if i % 1000 == 999:
                torch.cuda.synchronize()
        _C._set_kernel("auto")

    calls(1000)
    start = sample()
    calls(SOAK_CALLS)
    end = sample()
    print(f"soak: {SOAK_CALLS} calls of each entry point; RSS {start[0] >> 20} -> {end[0] >> 20} MiB, torch CUDA "
          f"allocated {start[1] >> 20} -> {end[1] >> 20} MiB, device free {start[2] >> 20} -> {end[2] >> 20} MiB")
    assert end[0] - start[0] < 16 << 20, "host RSS grew"
    assert end[1] == start[1], "torch's CUDA allocations grew"
    assert start[2] - end[2] < 64 << 20, "device memory in use grew"
    assert [sys.getrefcount(o) for o in objects] == references


# ---- CUDA failures, in child processes ----


def run_python(code, env=None):
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.path.join(ROOT, "python") + os.pathsep + os.path.join(ROOT,
                                                                                                               "tests")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)


EXHAUST_THEN_RECOVER = """
    import torch
    from nvfp4_group_gemm import custom_kernel, grouped_mm, moe
    from nvfp4_group_gemm.data import generate_input
    from nvfp4_group_gemm.reference import check_close, ref_kernel
    data = generate_input([200, 64], [1024, 512], [2048, 1024], seed=1)
    args = moe.from_leaderboard(generate_input([100, 28], 512, 1024, seed=2))
    if START == "warm":
        custom_kernel(data)
        grouped_mm(*args)
        torch.cuda.synchronize()
    outs = {"custom_kernel": [c for _, _, c in data[0]], "grouped_mm": [torch.empty(128, 512, dtype=torch.bfloat16, device="cuda")]}
    for tensors in outs.values():
        for t in tensors:
            t.fill_(float("nan"))
    pressured = (("custom_kernel", lambda: custom_kernel(data)),
                 ("grouped_mm", lambda: grouped_mm(*args, out=outs["grouped_mm"][0])))
    hog, chunk = [], 1 << 30
    while chunk >= 1 << 20:
        try:
            hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            chunk //= 2
    raised = []
    for name, call in pressured:
        try:
            call()
            torch.cuda.synchronize()
            print(name, "RAN")
        except (RuntimeError, ValueError) as error:
            print(name, "RAISED", "memory" in str(error).lower(), str(error)[:200])
            raised.append(name)
    del hog
    torch.cuda.empty_cache()
    for name in raised:
        print("UNTOUCHED", name, all(bool(t.isnan().all()) for t in outs[name]))
    for name, call in (("custom_kernel", lambda: custom_kernel(data)), ("grouped_mm", lambda: grouped_mm(*args))):
        try:
            outputs = call()
            torch.cuda.synchronize()
            if name == "custom_kernel":
                print("AFTER", name, all(check_close(o, r)[0] for o, r in zip(outputs, ref_kernel(data))))
            else:
                print("AFTER", name, bool(outputs.isfinite().all()))
        except RuntimeError as error:
            print("AFTER", name, "RAISED", str(error)[:200])
"""


@pytest.mark.parametrize("start, loading", [("warm", "LAZY"), ("cold", "EAGER"), ("cold", "LAZY")])
def test_memory_exhausted_then_recovered(start, loading):
    """With the device full, a call either runs right (its memory already pooled) or raises with CUDA's or torch's
    out-of-memory message, and writes nothing; freed, the next call runs right. Both entry points.

    warm: the kernels ran before the memory ran out (a serving process); cold: the first calls come under pressure.
    Under CUDA's default lazy module loading a kernel's code is loaded at its first launch, and a load that fails
    for memory is not retried by CUDA: that kernel's later launches fail with cudaErrorUnknown, which the next calls
    report (measured on the H200, CUDA 13.0); with CUDA_MODULE_LOADING=EAGER, or after a first call, they recover."""
    result = run_python(f"START = {start!r}\n" + textwrap.dedent(EXHAUST_THEN_RECOVER),
                        env={"CUDA_MODULE_LOADING": loading})
    lines = result.stdout.splitlines()
    for line in lines:
        if "RAISED" in line and not line.startswith("AFTER"):
            assert "RAISED True" in line, line
        if line.startswith("UNTOUCHED"):
            assert line.endswith("True"), "a call that raised wrote its output: " + line
    if start == "cold" and loading == "LAZY":
        # No crash, and the failure is reported where it happens: each call raises with CUDA's message.
        assert result.returncode == 0, result.stdout + result.stderr
        assert any(line.startswith("AFTER custom_kernel") for line in lines), result.stdout + result.stderr
        for line in lines:
            if line.startswith("AFTER") and "RAISED" in line:
                assert "CUDA error" in line, line
    else:
        assert "AFTER custom_kernel True" in lines and "AFTER grouped_mm True" in lines, result.stdout + result.stderr


def test_no_visible_device_is_an_error_not_a_crash():
    result = run_python("""
        import torch
        from nvfp4_group_gemm import custom_kernel, device_info
        from nvfp4_group_gemm.data import generate_input
        data = generate_input([64], [64], [64], seed=0, device="cpu")
        try:
            custom_kernel(data)
        except (RuntimeError, ValueError) as error:
            print("RAISED", type(error).__name__, str(error)[:200])
        try:
            device_info(0)
        except RuntimeError as error:
            print("INFO RAISED", str(error)[:200])
    """, env={"CUDA_VISIBLE_DEVICES": ""})
    assert "RAISED ValueError abc[0].a: expected a CUDA tensor" in result.stdout, result.stdout + result.stderr
    assert "INFO RAISED" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
