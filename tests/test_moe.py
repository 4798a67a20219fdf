"""grouped_mm, the MoE-layout entry point: its checks, its float64 reference against the leaderboard reference on
the same products, and its torch.ops registration (opcheck, torch.compile), on the CPU."""

import math

import pytest
import torch

from nvfp4_group_gemm import _C, moe
from nvfp4_group_gemm.data import SF_VEC, ceil_div
from nvfp4_group_gemm.reference import check_close, dequantize, ref_kernel, round_to

E4M3_FINITE_MAX_CODE = 0x7E


def blocked(plain, rows_padded, generator):
    """[rows_padded, K/16] bytes of plain scale codes [rows, K/16] in the 128x4 blocked layout; padding random."""
    rows, cols = plain.shape
    buffer = torch.randint(1, E4M3_FINITE_MAX_CODE + 1, (rows_padded * cols,), dtype=torch.uint8, generator=generator)
    buffer[moe._blocked_offsets(rows, cols * SF_VEC).reshape(-1)] = plain.reshape(-1)
    return buffer.view(rows_padded, cols)


def moe_inputs(m, n, k, seed=0, spare_scale_rows=0):
    """(grouped_mm's args, the same problem as leaderboard groups with plain scales): every e2m1 code, scales over the
    whole finite e4m3 range (subnormals and zero included), a_scale's blocks at the cumsum of round_up(m_e, 128)."""
    g = torch.Generator().manual_seed(seed)
    experts, tokens = len(m), sum(m)
    a = torch.randint(0, 256, (tokens, k // 2), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (experts, n, k // 2), dtype=torch.uint8, generator=g)
    sfa = torch.randint(0, E4M3_FINITE_MAX_CODE + 1, (tokens, k // SF_VEC), dtype=torch.uint8, generator=g)
    sfb = torch.randint(0, E4M3_FINITE_MAX_CODE + 1, (experts, n, k // SF_VEC), dtype=torch.uint8, generator=g)
    blocks, start = [], 0
    for rows in m:
        blocks.append(blocked(sfa[start:start + rows], ceil_div(rows, 128) * 128, g))
        start += rows
    spare = torch.randint(1, E4M3_FINITE_MAX_CODE + 1, (spare_scale_rows, k // SF_VEC), dtype=torch.uint8, generator=g)
    a_scale = torch.cat(blocks + [spare]).view(torch.float8_e4m3fn)
    n_padded = ceil_div(n, 128) * 128
    b_scale = torch.stack([blocked(sfb[e], n_padded, g) for e in range(experts)]).view(torch.float8_e4m3fn)
    offsets = torch.tensor(m, dtype=torch.int64).cumsum(0).to(torch.int32)
    args = (a.view(torch.float4_e2m1fn_x2), b.view(torch.float4_e2m1fn_x2), a_scale, b_scale, offsets)
    groups, start = [], 0
    for e, rows in enumerate(m):
        groups.append((a[start:start + rows].unsqueeze(2), b[e].unsqueeze(2),
                       sfa[start:start + rows].view(torch.float8_e4m3fn).unsqueeze(2),
                       sfb[e].view(torch.float8_e4m3fn).unsqueeze(2)))
        start += rows
    return args, groups


def leaderboard_outputs(groups):
    data = ([(a, b, None) for a, b, _, _ in groups], [(sa, sb) for _, _, sa, sb in groups], None, None)
    return ref_kernel(data)


@pytest.mark.parametrize("m", [[5, 0, 130, 64], [1], [0] * 200 + [17] * 50 + [0] * 6], ids=["mixed", "E=1", "E=256"])
def test_reference_matches_the_leaderboard_reference(m):
    n, k = 72, 128
    args, groups = moe_inputs(m, n, k, seed=len(m))
    out = moe.reference(*args, out_dtype=torch.float16)
    start = 0
    for e, expected in enumerate(leaderboard_outputs(groups)):
        rows = m[e]
        ok, message = check_close(out[start:start + rows], expected[:, :, 0])
        assert ok, f"expert {e}: {message}"
        start += rows


def test_alpha_and_bfloat16():
    m, n, k = [40, 0, 90], 256, 192
    args, groups = moe_inputs(m, n, k, seed=3)
    alpha = torch.tensor([0.5, 3.0, 2.0 ** -20], dtype=torch.float32)
    out = moe.grouped_mm(*args, alpha=alpha)
    assert out.dtype == torch.bfloat16 and out.shape == (sum(m), n)
    # float64 products (past fp16's range here: bfloat16 holds them) times alpha, rounded once to bfloat16.
    expected = torch.cat([(dequantize(a, sa)[:, :, 0] @ dequantize(b, sb)[:, :, 0].T) * alpha[e].item()
                          for e, (a, b, sa, sb) in enumerate(groups)])
    assert (expected.abs() > 65504).any()
    assert torch.equal(out, round_to(expected, torch.bfloat16))


def test_out_is_written_and_returned():
    args, _ = moe_inputs([3, 4], 16, 64, seed=4)
    out = torch.full((7, 16), float("nan"), dtype=torch.float16)
    assert moe.grouped_mm(*args, out_dtype=torch.float16, out=out) is out
    assert not out.isnan().any()


@pytest.mark.parametrize("field, change, error, message", [
    ("a", lambda t: t.view(torch.uint8).half(), TypeError, "a: expected dtype"),
    ("b", lambda t: t[:, :, :16].contiguous(), ValueError, "b: expected shape"),
    ("b", lambda t: t.transpose(0, 1), ValueError, "b: expected a contiguous tensor"),
    ("a_scale", lambda t: t[:100], ValueError, "a_scale: expected shape"),
    ("b_scale", lambda t: t.view(torch.int8), TypeError, "b_scale: expected dtype"),
    ("b_scale", lambda t: t[:1], ValueError, "b_scale: expected shape"),
    ("offsets", lambda t: t.long(), TypeError, "offsets: expected dtype torch.int32"),
    ("offsets", lambda t: t[:1], ValueError, "offsets: expected shape"),
])
def test_bad_argument_is_named_and_nothing_is_written(field, change, error, message):
    args, _ = moe_inputs([3, 4], 16, 64, seed=5)
    names = ["a", "b", "a_scale", "b_scale", "offsets"]
    args = list(args)
    args[names.index(field)] = change(args[names.index(field)])
    out = torch.full((7, 16), 7.0, dtype=torch.bfloat16)
    with pytest.raises(error, match=message):
        moe.grouped_mm(*args, out=out)
    assert (out == 7.0).all()


def test_bad_alpha_out_and_dtype():
    args, _ = moe_inputs([3, 4], 16, 64, seed=6)
    with pytest.raises(ValueError, match="alpha: expected shape"):
        moe.grouped_mm(*args, alpha=torch.ones(3))
    with pytest.raises(TypeError, match="out_dtype: expected"):
        moe.grouped_mm(*args, out_dtype=torch.float32)
    with pytest.raises(ValueError, match="out: expected shape"):
        moe.grouped_mm(*args, out=torch.empty(8, 16, dtype=torch.bfloat16))


def test_offsets_out_of_range_raise_in_the_reference():
    args, _ = moe_inputs([3, 4], 16, 64, seed=7)
    args = list(args)
    args[4] = torch.tensor([5, 2], dtype=torch.int32)
    with pytest.raises(ValueError, match="offsets: expected non-decreasing"):
        moe.grouped_mm(*args)


def test_opcheck():
    # The packed operands and scales as uint8 views (the op takes both): opcheck's schema test clones and compares
    # its inputs, which torch's CPU ops do not do for float4_e2m1fn_x2 and float8_e4m3fn.
    args, _ = moe_inputs([3, 0, 9], 24, 64, seed=8)
    args = (*(t.view(torch.uint8) for t in args[:4]), args[4])
    alpha = torch.tensor([1.0, 2.0, 0.25])
    torch.library.opcheck(torch.ops.nvfp4_group_gemm.grouped_mm.default, (*args, alpha, torch.bfloat16))
    out = torch.zeros(12, 24, dtype=torch.float16)
    torch.library.opcheck(torch.ops.nvfp4_group_gemm.grouped_mm_out.default, (*args, None, out))


def test_torch_compile_fullgraph():
    args, _ = moe_inputs([6, 2], 32, 64, seed=9)
    alpha = torch.tensor([1.5, 0.5])

    def step(a, b, a_scale, b_scale, offsets):
        return moe.grouped_mm(a, b, a_scale, b_scale, offsets, alpha=alpha) * 2

    compiled = torch.compile(step, fullgraph=True)
    assert torch.equal(compiled(*args), step(*args))


# ---- On a GPU ----

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(params=["auto", "portable"])
def family(request):
    """Each GPU test runs on every family: on an H100/H200 "auto" is the stream-K Hopper kernel."""
    _C._set_kernel(request.param)
    yield request.param
    _C._set_kernel("auto")


def to_cuda(args):
    """grouped_mm's tensor arguments moved to the GPU (1-byte dtypes through uint8 views)."""
    return tuple(t.view(torch.uint8).cuda().view(t.dtype) if t.element_size() == 1 else t.cuda() for t in args)


def magnitudes(args, alpha=None):
    """sum |terms| of every output (bfloat16 holds its range): the reference on the operands' absolute values."""
    a, b, a_scale, b_scale, offsets = args
    absolute = [(t.view(torch.uint8) & 0x77).view(t.dtype) for t in (a, b)]  # e2m1 sign bits cleared
    return moe.reference(*absolute, a_scale, b_scale, offsets, alpha=None if alpha is None else alpha.abs())


def assert_matches(out, expected, magnitude, k):
    """out within one rounding of expected (one ulp) plus what fp32 accumulation of K terms may lose (K * 2^-24
    of the sum of |terms|). An infinity counts as the overflow threshold (the format's largest value plus half an
    ulp), so that a sum just under the threshold may come out infinite, and one just over it finite, where the
    accumulation's error allows; an infinity of the wrong sign, or far from the threshold, still fails."""
    rtol = 2 ** -7 if expected.dtype == torch.bfloat16 else 2 ** -9
    info = torch.finfo(expected.dtype)
    threshold = info.max + 2.0 ** math.floor(math.log2(info.max)) * info.eps / 2  # fp16: 65520
    out, expected = (t.cpu().double().clamp(-threshold, threshold) for t in (out, expected))
    magnitude = magnitude.double()
    assert not out.isnan().any(), "NaN in the output"
    excess = (out - expected).abs() - rtol * expected.abs() - k * 2 ** -24 * magnitude
    assert excess.numel() == 0 or excess.max() <= 0, f"worst excess over the bound: {excess.max().item()}"


def test_comparison_accepts_the_reference_and_refuses_a_wrong_scale():
    args, _ = moe_inputs([20, 0, 9], 64, 128, seed=14)
    expected = moe.reference(*args)
    assert_matches(expected, expected, magnitudes(args), 128)
    wrong = list(args)
    wrong[3] = torch.roll(args[3].view(torch.uint8), 1, dims=1).view(torch.float8_e4m3fn)  # b's scales misplaced
    with pytest.raises(AssertionError):
        assert_matches(moe.reference(*wrong), expected, magnitudes(args), 128)


@gpu
# E = 256 is the most experts whose layout the stream-K pre-pass derives itself; E = 300 runs the table kernel first.
@pytest.mark.parametrize("m", [[5, 0, 130, 64], [1], [0] * 200 + [17] * 50 + [0] * 6, [0] * 250 + [9] * 40 + [0] * 10,
                               [300, 0, 0]],
                         ids=["mixed", "E=1", "E=256", "E=300", "trailing-empty"])
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16])
def test_cuda_matches_the_reference(m, out_dtype, family):
    n, k = 200, 256
    args, _ = moe_inputs(m, n, k, seed=len(m), spare_scale_rows=128)
    alpha = torch.linspace(0.25, 2.0, len(m), dtype=torch.float32)
    expected = moe.reference(*args, alpha=alpha, out_dtype=out_dtype)
    cuda_args = to_cuda(args)
    out = torch.full((sum(m), n), float("nan"), dtype=out_dtype, device="cuda")
    assert moe.grouped_mm(*cuda_args, alpha=alpha.cuda(), out_dtype=out_dtype, out=out) is out
    torch.cuda.synchronize()
    assert_matches(out, expected, magnitudes(args, alpha), k)
    functional = moe.grouped_mm(*cuda_args, out_dtype=out_dtype)
    assert functional.dtype == out_dtype and functional.shape == (sum(m), n)
    assert_matches(functional, moe.reference(*args, out_dtype=out_dtype), magnitudes(args), k)


# The four benchmark specs, and calls whose stream-K schedules split units (K = 7168 and 2048 over few units) or run
# whole ones: grouped_mm on the same problem in its layout runs the same schedule, so the same bits.
SAME_AS_CUSTOM_KERNEL = [
    ([80, 176, 128, 72, 64, 248, 96, 160], 4096, 7168),
    ([40, 76, 168, 72, 164, 148, 196, 160], 7168, 2048),
    ([192, 320], 3072, 4096),
    ([128, 384], 4096, 1536),
    ([0, 240, 17, 0, 241, 0], 1024, 2048),
    ([0, 3, 0, 40, 0], 7168, 2048),
]


@gpu
@pytest.mark.parametrize("spec", SAME_AS_CUSTOM_KERNEL, ids=["bench1", "bench2", "bench3", "bench4", "split",
                                                            "small-m"])
def test_same_bits_as_custom_kernel(spec, family):
    from nvfp4_group_gemm.data import generate_input, poison_outputs
    m, n, k = spec
    data = generate_input(m, n, k, seed=sum(m), full_range=True)
    poison_outputs(data)
    expected = [c[:, :, 0].clone() for c in _C.custom_kernel(data)]
    args = moe.from_leaderboard(data)
    out = torch.full((sum(m), n), float("nan"), dtype=torch.float16, device="cuda")
    moe.grouped_mm(*args, out_dtype=torch.float16, out=out)
    torch.cuda.synchronize()
    start = 0
    for e, rows in enumerate(m):
        assert torch.equal(out[start:start + rows], expected[e]), f"expert {e}"
        start += rows


@gpu
def test_cuda_offsets_out_of_range_are_clamped(family):
    args, _ = moe_inputs([3, 4, 2], 64, 64, seed=11, spare_scale_rows=256)
    bad = torch.tensor([5, 2, 100], dtype=torch.int32)  # read as ends 5, 5, 9: clamped, nothing outside a
    cuda_args = to_cuda((*args[:4], bad))
    out = moe.grouped_mm(*cuda_args)
    torch.cuda.synchronize()
    clamped = (*args[:4], torch.tensor([5, 5, 9], dtype=torch.int32))
    assert_matches(out, moe.reference(*clamped), magnitudes(clamped), 64)


@gpu
def test_cuda_short_a_scale_gives_the_expert_no_rows(family):
    """The host cannot see which expert's scale block runs past a_scale (the offsets are on the device): that
    expert gets no rows, so its out rows stay as they were and nothing past a_scale is read; the others are right."""
    args, _ = moe_inputs([3, 4, 2], 64, 64, seed=15)
    short = args[2][:2 * 128]  # blocks for experts 0 and 1 only (expert 2's would be rows 256..383)
    out = torch.full((9, 64), float("nan"), dtype=torch.bfloat16, device="cuda")
    moe.grouped_mm(*to_cuda((args[0], args[1], short, args[3], args[4])), out=out)
    torch.cuda.synchronize()
    first_two = (*args[:4], torch.tensor([3, 7, 7], dtype=torch.int32))
    assert_matches(out[:7], moe.reference(*first_two)[:7], magnitudes(first_two)[:7], 64)
    assert out[7:].isnan().all()


@gpu
def test_debug_check_of_the_offsets():
    args, _ = moe_inputs([3, 4, 2], 64, 64, seed=15)
    cuda_args = to_cuda(args)
    out = torch.full((9, 64), 7.0, dtype=torch.bfloat16, device="cuda")
    previous = _C._set_check_offsets(True)
    try:
        for bad, message in (([5, 2, 9], "offsets: expected non-decreasing ends"),
                             ([3, 7, 10], "offsets: expected non-decreasing ends within \\[0, T = 9\\]"),
                             ([-1, 7, 9], "offsets: expected non-decreasing")):
            with pytest.raises(ValueError, match=message):
                moe.grouped_mm(*cuda_args[:4], torch.tensor(bad, dtype=torch.int32, device="cuda"), out=out)
        torch.cuda.synchronize()
        assert (out == 7.0).all()
        moe.grouped_mm(*cuda_args, out=out)  # valid offsets pass the check and run
        torch.cuda.synchronize()
        assert_matches(out, moe.reference(*args), magnitudes(args), 64)
        graph = torch.cuda.CUDAGraph()
        with pytest.raises(RuntimeError, match="graph capture"):
            with torch.cuda.graph(graph):
                moe.grouped_mm(*cuda_args, out=out)
    finally:
        _C._set_check_offsets(previous)


@gpu
def test_cuda_argument_checks():
    args, _ = moe_inputs([3, 4], 64, 64, seed=16)
    cuda_args = list(to_cuda(args))
    storage = torch.empty(7 * 64 + 4, dtype=torch.bfloat16, device="cuda")
    misaligned = storage[4:].view(7, 64)  # 8 bytes past a 16-byte boundary
    with pytest.raises(ValueError, match="out: expected a 16-byte aligned data pointer"):
        moe.grouped_mm(*cuda_args, out=misaligned)
    with pytest.raises(ValueError, match="b: expected a tensor on a's device"):
        moe.grouped_mm(cuda_args[0], args[1], *cuda_args[2:])
    with pytest.raises(TypeError, match="unexpected keyword argument 'bias'"):
        moe.grouped_mm(*cuda_args, bias=None)


@gpu
def test_cuda_graph_replay_with_a_new_routing(family):
    n, k, experts = 96, 128, 4
    first, _ = moe_inputs([10, 0, 30, 24], n, k, seed=12, spare_scale_rows=0)
    rows = first[2].shape[0] + 512  # a_scale rows that hold any routing of these 64 tokens: T + 127 E rounded up
    first, _ = moe_inputs([10, 0, 30, 24], n, k, seed=12, spare_scale_rows=rows - first[2].shape[0])
    second, _ = moe_inputs([0, 40, 4, 20], n, k, seed=13, spare_scale_rows=rows - 128 * 3)
    assert second[2].shape == first[2].shape
    live = to_cuda(first)
    out = torch.zeros(64, n, dtype=torch.bfloat16, device="cuda")
    moe.grouped_mm(*live, out=out)  # warm up outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        moe.grouped_mm(*live, out=out)
    for args in (second, first):
        for target, source in zip(live, to_cuda(args)):
            target.copy_(source) if target.element_size() != 1 else target.view(torch.uint8).copy_(source.view(torch.uint8))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_matches(out, moe.reference(*args), magnitudes(args), k)


@gpu
def test_profiler_names_the_op(family):
    args, _ = moe_inputs([30, 0, 50], 256, 256, seed=17)
    cuda_args = to_cuda(args)
    moe.grouped_mm(*cuda_args)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        moe.grouped_mm(*cuda_args)
        torch.cuda.synchronize()
    names = {event.name for event in prof.events()}
    assert "nvfp4_group_gemm::grouped_mm" in names
    # The call's first kernel: on an H100/H200 the stream-K kernel's MoE pre-pass (3 experts: it derives the layout
    # itself, no table kernel), elsewhere or with the portable kernel forced the table kernel in front of it.
    streamk = family == "auto" and torch.cuda.get_device_capability() == (9, 0)
    first, absent = ("moe_prepass_kernel", "moe_table_kernel")
    if not streamk:
        first, absent = absent, first
    assert any(first in name for name in names), sorted(names)
    assert not any(absent in name for name in names), sorted(names)


TORCH_NVFP4_HELPERS = {"_n_ones", "_f32_to_floatx_unpacked", "down_size", "pack_uint4", "_bfloat16_to_float4_e2m1fn_x2",
                       "ceil_div", "to_blocked"}
TORCH_NVFP4_CONSTANTS = {"EBITS_F32", "MBITS_F32", "F32_EXP_BIAS", "FP4_EBITS", "FP4_MBITS"}


def torch_nvfp4_helpers():
    """The NVFP4 helpers torch ships for its own scaled-mm tests (torch/testing/_internal/common_quantized.py):
    torchao's float-to-e2m1 rounding, the e2m1 packing and the 128x4 blocked scale layout (to_blocked). That module
    imports torch's whole test framework (expecttest, which the GPU machine lacks), so the functions and constants
    they need are taken from its source as they are and run alone."""
    import ast
    import pathlib
    path = pathlib.Path(torch.__file__).parent / "testing" / "_internal" / "common_quantized.py"
    tree = ast.parse(path.read_text())
    def assigned(node):  # the names a module-level assignment binds (a = ..., or a, b = ...)
        names = {getattr(t, "id", None) for t in node.targets}
        return names | {getattr(e, "id", None) for t in node.targets for e in getattr(t, "elts", [])}

    keep = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name in TORCH_NVFP4_HELPERS)
            or (isinstance(node, ast.Assign) and assigned(node) & TORCH_NVFP4_CONSTANTS)]
    namespace = {"torch": torch, "Tensor": torch.Tensor}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    missing = (TORCH_NVFP4_HELPERS | TORCH_NVFP4_CONSTANTS) - namespace.keys()
    assert not missing, f"torch's common_quantized.py no longer defines {missing}"
    return namespace


def inputs_from_torchs_nvfp4_helpers(m, n, k, seed):
    """grouped_mm's arguments from bf16 tokens and weights quantized with torch's helpers (torch_nvfp4_helpers): per
    16 elements the scale is amax / 6 in e4m3 and the values x / scale rounded to e2m1 by torchao's rounding; the
    scales laid out by to_blocked, expert by expert. Also the plain scales, to check the layout against."""
    helpers = torch_nvfp4_helpers()
    gen = torch.Generator().manual_seed(seed)

    def quantize(x):  # [rows, K] bf16 -> packed e2m1 [rows, K/2], e4m3 scales [rows, K/16]
        blocks = x.float().view(x.shape[0], -1, 16)
        scale = (blocks.abs().amax(-1) / 6).clamp(min=2 ** -9).to(torch.float8_e4m3fn)
        values = (blocks / scale.float().unsqueeze(-1)).clamp(-6, 6).view(x.shape).to(torch.bfloat16)
        return helpers["_bfloat16_to_float4_e2m1fn_x2"](values), scale

    tokens = torch.randn(sum(m), k, generator=gen).to(torch.bfloat16)
    weights = torch.randn(len(m), n, k, generator=gen).to(torch.bfloat16)
    a, sa = quantize(tokens)
    blocks, start = [], 0
    for rows in m:
        if rows:
            blocks.append(helpers["to_blocked"](sa[start:start + rows]).view(-1, k // SF_VEC))
        start += rows
    packed_b, sb = zip(*(quantize(w) for w in weights))
    b = torch.stack([t.view(torch.uint8) for t in packed_b]).view(torch.float4_e2m1fn_x2)
    b_scale = torch.stack([helpers["to_blocked"](s).view(-1, k // SF_VEC) for s in sb])
    offsets = torch.tensor(m).cumsum(0).to(torch.int32)
    return (a, b, torch.cat(blocks), b_scale, offsets), sa, sb


def test_torchs_nvfp4_helpers_make_inputs_of_this_layout():
    """The reference reads the blocked scales where torch's to_blocked put them: its result equals the products
    computed from the plain scales, rounded once."""
    m, n, k = [70, 0, 140], 192, 256
    args, sa, sb = inputs_from_torchs_nvfp4_helpers(m, n, k, seed=18)
    expected = moe.reference(*args)
    start = 0
    for e, rows in enumerate(m):
        a_e = dequantize(args[0][start:start + rows].view(torch.uint8).unsqueeze(2), sa[start:start + rows].unsqueeze(2))
        b_e = dequantize(args[1][e].view(torch.uint8).unsqueeze(2), sb[e].unsqueeze(2))
        assert torch.equal(expected[start:start + rows], round_to(a_e[:, :, 0] @ b_e[:, :, 0].T, torch.bfloat16))
        start += rows


@gpu
def test_inputs_from_torchs_nvfp4_helpers(family):
    m, n, k = [70, 0, 140], 192, 256
    args, _, _ = inputs_from_torchs_nvfp4_helpers(m, n, k, seed=18)
    out = moe.grouped_mm(*to_cuda(args))
    torch.cuda.synchronize()
    assert_matches(out, moe.reference(*args), magnitudes(args), k)
