"""GPU tests: every call checked against the float64 reference at the leaderboard tolerance.

Outputs are poisoned with NaN before each call, so an element the kernel skips fails the check.
Skipped, with the reason, where there is no CUDA GPU or the package was built without CUDA.
"""

import gc
import os
import shutil
import subprocess
import sys
import textwrap
import weakref

import pytest
import torch

import nvfp4_group_gemm
from nvfp4_group_gemm import _C, custom_kernel
from nvfp4_group_gemm.data import clone_data, every_product_input, generate_input, poison_outputs
from nvfp4_group_gemm.reference import check_close, ref_kernel

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
    pytest.mark.skipif(not nvfp4_group_gemm.WITH_CUDA, reason="nvfp4_group_gemm was built without CUDA"),
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOPPER = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


@pytest.fixture(autouse=True, params=["auto", "portable"])
def kernel(request):
    """Every test runs on every family: on an H100/H200 "auto" is the stream-K Hopper kernel; "portable" forces the
    portable kernel."""
    _C._set_kernel(request.param)
    yield request.param
    _C._set_kernel("auto")

# The leaderboard's test specs: (M list, N list, K list).
LEADERBOARD_TESTS = [
    ([96, 128], [128, 256], [256, 512]),
    ([256, 72], [512, 384], [256, 256]),
    ([128, 128], [128, 256], [512, 256]),
    ([80, 128, 256], [384, 256, 128], [256, 512, 256]),
    ([64, 72, 96], [128, 384, 512], [512, 512, 256]),
    ([64, 256, 128], [768, 128, 256], [512, 256, 512]),
    ([128, 128, 64], [256, 512, 512], [768, 256, 768]),
    ([128] * 4, [128] * 4, [512, 256, 512, 256]),
    ([40, 56, 384, 512], [512, 384, 256, 128], [256] * 4),
    ([512, 384, 256, 128], [256] * 4, [512, 768, 512, 768]),
]
BENCHMARKS = [
    ([80, 176, 128, 72, 64, 248, 96, 160], 4096, 7168),
    ([40, 76, 168, 72, 164, 148, 196, 160], 7168, 2048),
    ([192, 320], 3072, 4096),
    ([128, 384], 4096, 1536),
]


def run_checked(data):
    """Poison, call, check every output against the reference; returns the outputs."""
    poison_outputs(data)
    outputs = custom_kernel(data)
    assert isinstance(outputs, list) and len(outputs) == len(data[0])
    for out, (_, _, c) in zip(outputs, data[0]):
        assert out is c
    torch.cuda.synchronize()
    check_outputs(data, outputs)
    return outputs


def check_outputs(data, outputs):
    for i, (out, ref) in enumerate(zip(outputs, ref_kernel(data))):
        ok, message = check_close(out, ref)
        assert ok, f"group {i} (M, N, K, L = {data[3][i]}): {message}"


def test_every_product_is_exact():
    """Every product of two decoded operands, all 16 e2m1 codes times all 126 positive finite e4m3 scales on each
    side (fp16 subnormals, both signs, zeros, overflow to inf; data.every_product_input), equals the float64
    reference rounded once to fp16: no tolerance at all."""
    inputs = every_product_input()
    poison_outputs(inputs)
    outputs = custom_kernel(inputs)
    torch.cuda.synchronize()
    ok, message = check_close(outputs[0], ref_kernel(inputs)[0], rtol=0, atol=0)
    assert ok, message


@pytest.mark.parametrize("spec", LEADERBOARD_TESTS, ids=[f"test{i}" for i in range(len(LEADERBOARD_TESTS))])
@pytest.mark.parametrize("full_range", [False, True], ids=["leaderboard", "full_range"])
def test_leaderboard_specs(spec, full_range):
    m, n, k = spec
    run_checked(generate_input(m, n, k, seed=sum(m) + len(m), full_range=full_range))


@pytest.mark.parametrize("spec", BENCHMARKS, ids=[f"bench{i + 1}" for i in range(len(BENCHMARKS))])
@pytest.mark.parametrize("full_range", [False, True], ids=["leaderboard", "full_range"])
def test_benchmark_specs(spec, full_range):
    m, n, k = spec
    run_checked(generate_input(m, n, k, seed=len(m) * 7 + k, full_range=full_range))


@pytest.mark.parametrize("m", [0, 1, 7, 129, 300])
@pytest.mark.parametrize("n", [1, 8, 200, 1000])
@pytest.mark.parametrize("k", [64, 320])
def test_edge_shapes(m, n, k):
    # A second group of other sizes shares the launch, so tile lookup across groups is exercised too.
    run_checked(generate_input([m, 33], [n, 72], [k, 128], seed=m * 1000 + n + k, full_range=True))


# Shapes for the stream-K schedule's cases (ordinary calls for the other families). On an H200's 132 SMs,
# hopper_schedule.h gives: "split", 64 units split over the CTAs (189 pieces, 125 of them partial) with pieces of
# every k-block count modulo 4 and a 241-token group in two chunks; "uneven", 128 units of uneven cost, split too;
# "whole", 100 even units of 13 k-blocks, one per CTA; "narrow", chunks of at most 128 rows (300 tokens as
# 112 + 112 + 76), 128 whole units (hopper_choose_chunk_rows).
STREAMK_SCHEDULES = [
    ([240, 17, 241], [4096, 2048, 1024], [1088, 704, 1216]),
    ([8, 100, 33, 64], [7168, 4096, 2048, 3072], [192, 448, 320, 1984]),
    ([128], [12800], [832]),
    ([300, 100], [4096, 4096], [576, 576]),
]


@pytest.mark.parametrize("spec", STREAMK_SCHEDULES, ids=["split", "uneven", "whole", "narrow"])
def test_streamk_schedule_cases(spec):
    m, n, k = spec
    run_checked(generate_input(m, n, k, seed=sum(m), full_range=True))


@pytest.mark.parametrize("groups", [1, 8, 30, 31, 64, 1024])
def test_group_counts(groups):
    gen = torch.Generator().manual_seed(groups)
    m = torch.randint(0, 40, (groups,), generator=gen).tolist()
    n = (8 * torch.randint(1, 9, (groups,), generator=gen)).tolist()
    k = (64 * torch.randint(1, 3, (groups,), generator=gen)).tolist()
    before = _C._stats()
    run_checked(generate_input(m, n, k, seed=groups, full_range=True))
    after = _C._stats()
    by_value = sum(1 for mm in m if mm > 0) <= _C.INLINE_CAPACITY
    key = "inline_launches" if by_value else "ring_launches"
    assert after[key] == before[key] + 1


def test_batched_l2():
    run_checked(generate_input([96, 0, 130], [200, 64, 72], [256, 64, 320], l=2, seed=5, full_range=True))


def test_uint8_views_and_unusual_strides():
    """uint8 operands, padded rows, slice-interleaved c and oversized blocked scales are all valid."""
    base = generate_input([70, 130], [136, 40], [192, 128], l=2, seed=9, full_range=True)
    abc, sfasfb, sfr, sizes = base
    new_abc = []
    for (a, b, c), (mm, nn, kk, ll) in zip(abc, sizes):
        padded = torch.zeros((ll, mm, kk // 2 + 32), dtype=torch.uint8, device="cuda")
        padded[:, :, : kk // 2] = a.view(torch.uint8).permute(2, 0, 1)
        a_padded = padded[:, :, : kk // 2].permute(1, 2, 0)
        c_interleaved = torch.empty((mm, ll, nn), dtype=torch.float16, device="cuda").permute(0, 2, 1)
        new_abc.append((a_padded, b.view(torch.uint8), c_interleaved))
    bigger_sfr = []
    for (sfa, sfb), (mm, nn, kk, ll) in zip(sfr, sizes):
        rest_mn, rest_k = sfa.shape[2], sfa.shape[4]
        buf = torch.full((ll + 1, rest_mn + 1, rest_k + 2, 32, 4, 4), 0x7E, dtype=torch.uint8, device="cuda")
        big = buf.view(torch.float8_e4m3fn).permute(3, 4, 1, 5, 2, 0)
        big[:, :, :rest_mn, :, :rest_k, :ll] = sfa
        bigger_sfr.append((big, sfb))
    run_checked((new_abc, sfasfb, bigger_sfr, sizes))


class MarkedTensor(torch.Tensor):
    """A torch.Tensor subclass: read by the one-tensor path, not the one-call-per-group path."""


@pytest.mark.parametrize("wrap", ["parameter", "subclass"])
def test_tensor_subclasses_compute_the_same(wrap):
    """Subclass tensors (nn.Parameter, a user subclass) in some groups, plain tensors in others."""
    abc, sfasfb, sfr, sizes = generate_input([64, 130, 40], [128, 72, 256], [128, 320, 64], seed=4, full_range=True)
    if wrap == "parameter":
        as_wrapped = lambda t: torch.nn.Parameter(t, requires_grad=False)  # noqa: E731
    else:
        as_wrapped = lambda t: t.as_subclass(MarkedTensor)  # noqa: E731
    abc[1] = (abc[1][0], as_wrapped(abc[1][1]), abc[1][2])
    sfr[2] = (sfr[2][0], as_wrapped(sfr[2][1]))
    run_checked((abc, sfasfb, sfr, sizes))


def test_returns_new_list_of_callers_outputs():
    data = generate_input([64], [64], [64], seed=1)
    first, second = custom_kernel(data), custom_kernel(data)
    assert first is not second and first[0] is second[0] is data[0][0][2]


def test_prepared_call_keeps_its_tensors_alive():
    """The bare launch (_prepare, then _launch_prepared) holds the call's data, so its table never dangles."""
    data = generate_input([80, 40], [128, 256], [128, 64], seed=6, full_range=True)
    refs = ref_kernel(data)
    outputs = [c for _, _, c in data[0]]
    a = weakref.ref(data[0][0][0])
    capsule = _C._prepare(data)
    del data
    gc.collect()
    assert a() is not None
    for c in outputs:
        c.fill_(float("nan"))
    _C._launch_prepared(capsule)
    torch.cuda.synchronize()
    for i, (out, ref) in enumerate(zip(outputs, refs)):
        ok, message = check_close(out, ref)
        assert ok, f"group {i}: {message}"
    del capsule
    gc.collect()
    assert a() is None


def test_all_groups_empty_launches_nothing():
    data = generate_input([0, 0], [64, 8], [64, 128], seed=2)
    before = _C._stats()
    assert custom_kernel(data)[1] is data[0][1][2]
    assert _C._stats() == before


def test_rejected_call_writes_nothing():
    data = generate_input([64, 64], [128, 128], [128, 128], seed=3)
    for _, _, c in data[0]:
        c.fill_(7.0)
    abc = list(data[0])
    abc[1] = (abc[1][0], abc[1][1], abc[1][2].float())
    with pytest.raises(TypeError, match=r"abc\[1\]\.c"):
        custom_kernel((abc, data[1], data[2], data[3]))
    torch.cuda.synchronize()
    assert all(bool((c == 7.0).all()) for _, _, c in data[0])


def test_ring_slot_reuse_keeps_every_result():
    """More ring launches in flight than slots, each with its own table: every result must be right."""
    sets = [generate_input([16] * 40, [64] * 40, [64] * 40, seed=100 + i) for i in range(40)]
    for data in sets:
        poison_outputs(data)
    torch.cuda._sleep(50_000_000)  # keep the GPU busy so the host runs ahead of it through the ring
    outputs = [custom_kernel(data) for data in sets]
    torch.cuda.synchronize()
    for data, out in zip(sets, outputs):
        check_outputs(data, out)


def test_side_stream_ordering():
    """On a side stream the launch must queue behind the poisoning that waits behind a sleep; a launch on
    any other stream would finish first and leave NaN behind."""
    data = generate_input([96, 200], [256, 136], [512, 256], seed=11, full_range=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(20_000_000)
        poison_outputs(data)
        custom_kernel(data)
    torch.cuda.synchronize()
    check_outputs(data, [c for _, _, c in data[0]])


def copy_bytes(dst, src):
    dst.view(torch.uint8).copy_(src.view(torch.uint8))


def test_two_streams_at_once():
    """Calls on two streams run concurrently (the first stream's work is held back by a sleep so that the second
    stream's calls overlap it); each call's workspace belongs to its own stream, so both results stay right."""
    first = generate_input([200, 40], [256, 136], [512, 256], seed=21, full_range=True)
    second = generate_input([96, 300], [128, 200], [256, 512], seed=22, full_range=True)
    poison_outputs(first)
    poison_outputs(second)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(streams[0]):
        torch.cuda._sleep(20_000_000)
        for _ in range(3):
            custom_kernel(first)
    with torch.cuda.stream(streams[1]):
        for _ in range(3):
            custom_kernel(second)
    torch.cuda.synchronize()
    check_outputs(first, [c for _, _, c in first[0]])
    check_outputs(second, [c for _, _, c in second[0]])


@pytest.mark.parametrize("groups", [4, 48], ids=["by_value", "ring"])
def test_graph_capture_and_replay(groups):
    m = [(37 * i) % 150 + 1 for i in range(groups)]
    data = generate_input(m, [72] * groups, [128] * groups, seed=groups)
    custom_kernel(data)  # warm up outside the capture (module load, ring allocation)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        custom_kernel(data)
    for seed in (1, 2):
        fresh = generate_input(m, [72] * groups, [128] * groups, seed=1000 + seed, full_range=True)
        for (a, b, _), (fresh_a, fresh_b, _) in zip(data[0], fresh[0]):
            copy_bytes(a, fresh_a)
            copy_bytes(b, fresh_b)
        for (sfa, sfb), (fresh_sfa, fresh_sfb) in zip(data[2], fresh[2]):
            copy_bytes(sfa, fresh_sfa)
            copy_bytes(sfb, fresh_sfb)
        poison_outputs(data)
        custom_kernel(generate_input(m, [72] * groups, [128] * groups, seed=7))  # eager calls between replays
        graph.replay()
        torch.cuda.synchronize()
        check_outputs((data[0], fresh[1], data[2], data[3]), [c for _, _, c in data[0]])


def test_profiler_trace_shows_the_op_and_its_kernels(kernel, tmp_path):
    """torch.profiler's trace has the op nvfp4_group_gemm::custom_kernel, and every kernel of the family ran from a
    launch made inside the op's time span (matched by CUPTI's correlation id)."""
    import json

    from torch.profiler import ProfilerActivity, profile

    data = generate_input([100, 40], [256, 136], [512, 256], seed=31, full_range=True)
    custom_kernel(data)  # module load and first-call setup outside the trace
    torch.cuda.synchronize()
    poison_outputs(data)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        custom_kernel(data)
        torch.cuda.synchronize()
    check_outputs(data, [c for _, _, c in data[0]])
    trace_path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace_path))
    events = json.loads(trace_path.read_text())["traceEvents"]
    ops = [e for e in events if e.get("cat") == "cpu_op" and e.get("name") == "nvfp4_group_gemm::custom_kernel"]
    assert len(ops) == 1, [e.get("name") for e in events if e.get("cat") == "cpu_op"]
    begin, end = ops[0]["ts"], ops[0]["ts"] + ops[0]["dur"]
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    expected = {"token_prepass_kernel", "streamk_gemm_kernel"} if HOPPER and kernel == "auto" else {"portable_gemm_kernel"}
    found = set()
    for e in events:
        if e.get("cat") != "kernel":
            continue
        names = [name for name in expected if name in e["name"]]
        if not names:
            continue
        launch = launches.get(e["args"].get("correlation"))
        assert launch is not None, f"no launch event for kernel {e['name']}"
        assert begin <= launch["ts"] <= end, f"{e['name']} was launched outside the op ({launch['ts']} not in {begin}..{end})"
        found.update(names)
    assert found == expected, f"kernels in the trace: {sorted(e['name'] for e in events if e.get('cat') == 'kernel')}"


NCU = shutil.which("ncu") or ("/usr/local/cuda/bin/ncu" if os.path.exists("/usr/local/cuda/bin/ncu") else None)


@pytest.mark.skipif(NCU is None, reason="needs Nsight Compute's ncu, whose NVTX filter reads the range")
def test_nvtx_range_holds_the_kernels(kernel):
    """Nsight Compute profiles only the kernels launched inside an NVTX range it is told to include: the range
    nvfp4_group_gemm::custom_kernel holds the call's kernels, and a range of another name holds none."""
    code = textwrap.dedent("""
        import torch
        from nvfp4_group_gemm import custom_kernel
        from nvfp4_group_gemm.data import generate_input
        custom_kernel(generate_input([100, 40], [256, 136], [512, 256], seed=32))
        torch.cuda.synchronize()
    """)
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "python"), "NVFP4_KERNEL": kernel}
    expected = ["token_prepass_kernel", "streamk_gemm_kernel"] if HOPPER and kernel == "auto" else ["portable_gemm_kernel"]
    for range_name, profiled in (("nvfp4_group_gemm::custom_kernel", True), ("some_other_range", False)):
        result = subprocess.run([NCU, "--nvtx", "--nvtx-include", f"{range_name}/", "--metrics",
                                 "gpu__time_duration.sum", sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        for name in expected:
            assert (name in result.stdout) == profiled, f"range {range_name}:\n{result.stdout[-3000:]}"


def test_refcounts_unchanged_after_many_calls():
    data = generate_input([8, 16], [8, 16], [64, 64], seed=4)
    objects = [data, *data] + [t for group in data[0] for t in group] + [t for group in data[2] for t in group]
    objects += list(data[0]) + list(data[2]) + list(data[3])
    before = [sys.getrefcount(o) for o in objects]
    for _ in range(100_000):
        custom_kernel(data)
    torch.cuda.synchronize()
    assert [sys.getrefcount(o) for o in objects] == before


def run_python(code, kernel, env=None):
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.path.join(ROOT, "python"), "NVFP4_KERNEL": kernel}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cuda_error_surfaces_as_runtime_error(kernel):
    """After a device-side fault the context is broken (a sticky error): the next call of either entry point must
    raise CUDA's error, not pass or crash."""
    result = run_python("""
        import torch
        from nvfp4_group_gemm import custom_kernel, grouped_mm, moe
        from nvfp4_group_gemm.data import generate_input
        data = generate_input([64], [64], [64], seed=0)
        args = moe.from_leaderboard(generate_input([5, 3], 64, 64, seed=1))
        out = grouped_mm(*args)
        custom_kernel(data)
        torch.cuda.synchronize()
        x = torch.zeros(4, device="cuda")
        try:
            x[torch.tensor([1 << 40], device="cuda")] = 1.0
            torch.cuda.synchronize()
        except RuntimeError:
            pass
        for name, call in (("custom_kernel", lambda: custom_kernel(data)),
                           ("grouped_mm", lambda: grouped_mm(*args, out=out))):
            try:
                call()
                print(name, "PASSED")
            except RuntimeError as e:
                print(name, "RAISED", e)
    """, kernel)
    assert "custom_kernel RAISED CUDA error in" in result.stdout, result.stdout + result.stderr
    assert "grouped_mm RAISED CUDA error" in result.stdout, result.stdout + result.stderr


def test_ptx_jit_path(kernel):
    """The compute_80 PTX (what a GPU newer than the built machine code runs) gives the same results.

    CUDA_FORCE_PTX_JIT=1 makes the driver ignore machine code everywhere, and torch ships none of its
    kernels as PTX, so this child uses no torch kernel: data is made on the CPU and moved by copies."""
    result = run_python("""
        import torch
        from nvfp4_group_gemm import custom_kernel
        from nvfp4_group_gemm.data import generate_input
        from nvfp4_group_gemm.reference import check_close, ref_kernel

        def to_gpu(t):
            return t.view(torch.uint8).to("cuda").view(t.dtype) if t.element_size() == 1 else t.to("cuda")

        host = generate_input([1, 100, 300], [200, 8, 136], [320, 64, 128], seed=3, full_range=True, device="cpu")
        for _, _, c in host[0]:
            c.fill_(float("nan"))
        abc = [tuple(to_gpu(t) for t in group) for group in host[0]]
        sfr = [tuple(to_gpu(t) for t in group) for group in host[2]]
        out = custom_kernel((abc, host[1], sfr, host[3]))
        results = [o.cpu() for o in out]
        print("OK" if all(check_close(o, r)[0] for o, r in zip(results, ref_kernel(host))) else "MISMATCH")
    """, "portable", env={"CUDA_FORCE_PTX_JIT": "1"})  # the Hopper kernel ships no PTX by design
    assert result.stdout.strip().endswith("OK"), result.stdout + result.stderr


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs to run on a device other than the current one")
def test_runs_on_tensor_device_not_current_device():
    with torch.cuda.device(1):
        data = generate_input([96], [128], [256], seed=8, device="cuda:1")
    with torch.cuda.device(0):
        run_checked(data)
        assert torch.cuda.current_device() == 0


def test_kernel_family_by_compute_capability(kernel):
    data = generate_input([64], [128], [128], seed=12)
    before = _C._stats()
    custom_kernel(data)
    after = _C._stats()
    family = "streamk_launches" if HOPPER and kernel == "auto" else "portable_launches"
    assert after[family] == before[family] + 1


def test_device_info():
    info = _C.device_info(torch.cuda.current_device())
    major, minor = torch.cuda.get_device_capability()
    assert (info["major"], info["minor"]) == (major, minor) and info["multiprocessors"] > 0


def test_clone_data_is_independent():
    data = generate_input([32], [64], [64], seed=6)
    copy = clone_data(data)
    run_checked(copy)
    run_checked(data)
