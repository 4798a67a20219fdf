"""grouped_mm: the NVFP4 grouped GEMM in the layout MoE serving engines keep (vLLM, FlashInfer, SGLang, torch).

    out = grouped_mm(a, b, a_scale, b_scale, offsets, alpha=alpha)   # out[rows of expert e] = alpha[e] * a_e @ b[e]^T

Inputs (T tokens sorted by expert, E experts, N output features, K a multiple of 64):
- a        [T, K/2]      float4_e2m1fn_x2 or uint8, rows contiguous; byte i of a row holds element 2i in its low
                          nibble and 2i + 1 in its high nibble.
- b        [E, N, K/2]   the same dtype, contiguous.
- a_scale  [R, K/16]     float8_e4m3fn (or uint8), contiguous, R a multiple of 128: the 128x4 blocked layout of
                          vLLM, FlashInfer and torchao (byte of scale (r, c): ((r // 128) * (K/64) + c // 4) * 512
                          + (r % 32) * 16 + (r // 32) % 4 * 4 + c % 4), expert e's rows starting at row
                          sum over j < e of round_up(m_j, 128) (vLLM's blockscale_offsets, torchao's stacked
                          quantizer). R >= T + 127 E always suffices.
- b_scale  [E, round_up(N, 128), K/16]  float8_e4m3fn (or uint8), contiguous, each expert's matrix in that layout.
- offsets  [E] int32     cumulative end offsets (torch.nn.functional.grouped_mm's `offs`): expert e owns token rows
                          offsets[e - 1] .. offsets[e] (from 0 for e = 0). Never read by the host.
- alpha    [E] float32 or None: each expert's output factor (NVFP4's second-level scale).
Output: [T, N] of out_dtype (bfloat16 or float16), written into `out` when given. Rows past offsets[E - 1] are
not written. The result is the exact product, times alpha, rounded once.

This module registers torch.ops.nvfp4_group_gemm.grouped_mm (functional) and grouped_mm_out (writes `out`), with
fake implementations for torch.compile. On CUDA devices the group table is written on the GPU from `offsets`
(kernels/moe_table.cu) and the portable kernel runs over a grid sized by a bound; on the CPU the float64 reference
runs.
"""

import torch

from . import _C
from .data import SF_VEC, ceil_div
from .reference import decode_e2m1, round_to

ATOM_ROWS = 128
FP4_DTYPES = (torch.float4_e2m1fn_x2, torch.uint8)
SCALE_DTYPES = (torch.float8_e4m3fn, torch.uint8)
OUT_DTYPES = (torch.bfloat16, torch.float16)


def _dtype_names(dtypes):
    return " or ".join(str(d) for d in dtypes)


def _check_tensor(name, t, dtypes, dim):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"grouped_mm: {name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"grouped_mm: {name}: expected dtype {_dtype_names(dtypes)}, got {t.dtype}")
    if t.dim() != dim:
        raise ValueError(f"grouped_mm: {name}: expected {dim} dimensions, got shape {list(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"grouped_mm: {name}: expected a contiguous tensor, got strides {list(t.stride())}")


def check_arguments(a, b, a_scale, b_scale, offsets, alpha, out_dtype, out):
    """Raises TypeError / ValueError naming the argument; returns (tokens, experts, n, k)."""
    _check_tensor("a", a, FP4_DTYPES, 2)
    _check_tensor("b", b, FP4_DTYPES, 3)
    _check_tensor("a_scale", a_scale, SCALE_DTYPES, 2)
    _check_tensor("b_scale", b_scale, SCALE_DTYPES, 3)
    _check_tensor("offsets", offsets, (torch.int32,), 1)
    tokens, k = a.shape[0], 2 * a.shape[1]
    experts, n = b.shape[0], b.shape[1]
    if k == 0 or k % 64:
        raise ValueError(f"grouped_mm: a: expected K = 2 * a.shape[1] to be a positive multiple of 64, got K = {k}")
    if 2 * b.shape[2] != k:
        raise ValueError(f"grouped_mm: b: expected shape [E, N, K/2] with K/2 = {k // 2} (from a), "
                         f"got {list(b.shape)}")
    if experts == 0 or n == 0:
        raise ValueError(f"grouped_mm: b: expected at least one expert and one output feature, got {list(b.shape)}")
    if a_scale.shape[1] != k // SF_VEC or a_scale.shape[0] % ATOM_ROWS:
        raise ValueError(f"grouped_mm: a_scale: expected shape [R, K/16] = [R, {k // SF_VEC}] with R a multiple of "
                         f"{ATOM_ROWS}, got {list(a_scale.shape)}")
    b_scale_shape = [experts, ceil_div(n, ATOM_ROWS) * ATOM_ROWS, k // SF_VEC]
    if list(b_scale.shape) != b_scale_shape:
        raise ValueError(f"grouped_mm: b_scale: expected shape [E, round_up(N, 128), K/16] = {b_scale_shape}, "
                         f"got {list(b_scale.shape)}")
    if offsets.shape[0] != experts:
        raise ValueError(f"grouped_mm: offsets: expected shape [E] = [{experts}], got {list(offsets.shape)}")
    if alpha is not None:
        _check_tensor("alpha", alpha, (torch.float32,), 1)
        if alpha.shape[0] != experts:
            raise ValueError(f"grouped_mm: alpha: expected shape [E] = [{experts}], got {list(alpha.shape)}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"grouped_mm: out_dtype: expected {_dtype_names(OUT_DTYPES)}, got {out_dtype}")
    if out is not None:
        _check_tensor("out", out, (out_dtype,), 2)
        if list(out.shape) != [tokens, n]:
            raise ValueError(f"grouped_mm: out: expected shape [T, N] = {[tokens, n]}, got {list(out.shape)}")
    named = [("a", a), ("b", b), ("a_scale", a_scale), ("b_scale", b_scale), ("offsets", offsets)]
    named += [("alpha", alpha)] * (alpha is not None) + [("out", out)] * (out is not None)
    for name, t in named[1:]:
        if t.device != a.device:
            raise ValueError(f"grouped_mm: {name}: expected device {a.device} (a's), got {t.device}")
    return tokens, experts, n, k


def _blocked_offsets(rows, k):
    """Byte offset of scale (r, c) for r < rows, c < K/16 in a 128x4 blocked buffer with K/16 columns."""
    r = torch.arange(rows).view(rows, 1)
    c = torch.arange(k // SF_VEC).view(1, -1)
    return ((r // ATOM_ROWS) * (k // 64) + c // 4) * 512 + (r % 32) * 16 + (r % ATOM_ROWS) // 32 * 4 + c % 4


def _scales(buffer, first_row, rows, k):
    """float64 [rows, K/16] of the blocked scale buffer's rows first_row .. first_row + rows."""
    codes = buffer.view(torch.uint8).reshape(-1).cpu()
    picked = codes[_blocked_offsets(first_row + rows, k)[first_row:]]
    return picked.view(torch.float8_e4m3fn).to(torch.float64)


def reference(a, b, a_scale, b_scale, offsets, alpha=None, out_dtype=torch.bfloat16, out=None):
    """The float64 reference (on the CPU, whatever the inputs' device): out rows of each expert, rounded once."""
    tokens, experts, n, k = check_arguments(a, b, a_scale, b_scale, offsets, alpha, out_dtype, out)
    ends = offsets.cpu().tolist()
    result = torch.zeros(tokens, n, dtype=torch.float64)
    written = torch.zeros(tokens, dtype=torch.bool)
    start = scale_row = 0
    for e, end in enumerate(ends):
        if not start <= end <= tokens:
            raise ValueError(f"grouped_mm: offsets: expected non-decreasing ends within [0, T = {tokens}], "
                             f"got {ends}")
        rows = end - start
        if rows:
            if scale_row + rows > a_scale.shape[0]:
                raise ValueError(f"grouped_mm: a_scale: expert {e}'s block (rows {scale_row}..{scale_row + rows}) "
                                 f"runs past its {a_scale.shape[0]} rows")
            values = decode_e2m1(a[start:end].cpu().unsqueeze(2)).squeeze(2)
            sa = _scales(a_scale, scale_row, rows, k).repeat_interleave(SF_VEC, dim=1)
            weights = decode_e2m1(b[e].cpu().unsqueeze(2)).squeeze(2)
            sb = _scales(b_scale[e], 0, n, k).repeat_interleave(SF_VEC, dim=1)
            product = (values * sa) @ (weights * sb).T
            factor = 1.0 if alpha is None else float(alpha[e])
            result[start:end] = product * factor
            written[start:end] = True
        scale_row += ceil_div(rows, ATOM_ROWS) * ATOM_ROWS
        start = end
    rounded = round_to(result, out_dtype)
    target = torch.zeros(tokens, n, dtype=out_dtype) if out is None else out
    target[written.to(target.device)] = rounded[written].to(target.device)
    return target


# ---- torch.ops registration ----

@torch.library.custom_op("nvfp4_group_gemm::grouped_mm_out", mutates_args=("out",))
def _grouped_mm_out(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                    offsets: torch.Tensor, alpha: torch.Tensor | None, out: torch.Tensor) -> None:
    if a.device.type == "cuda":
        _C._grouped_mm_launch(a, b, a_scale, b_scale, offsets, alpha, out, int(out.dtype == torch.bfloat16))
    else:
        reference(a, b, a_scale, b_scale, offsets, alpha, out.dtype, out)


@_grouped_mm_out.register_fake
def _(a, b, a_scale, b_scale, offsets, alpha, out):
    return None


@torch.library.custom_op("nvfp4_group_gemm::grouped_mm", mutates_args=())
def _grouped_mm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                offsets: torch.Tensor, alpha: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    out = torch.zeros(a.shape[0], b.shape[1], dtype=out_dtype, device=a.device)
    _grouped_mm_out(a, b, a_scale, b_scale, offsets, alpha, out)
    return out


@_grouped_mm.register_fake
def _(a, b, a_scale, b_scale, offsets, alpha, out_dtype):
    return a.new_empty((a.shape[0], b.shape[1]), dtype=out_dtype)


def grouped_mm(a, b, a_scale, b_scale, offsets, *, alpha=None, out_dtype=torch.bfloat16, out=None):
    """NVFP4 grouped GEMM of MoE layout (module docstring); returns `out` or a new [T, N] tensor."""
    check_arguments(a, b, a_scale, b_scale, offsets, alpha, out_dtype, out)
    if out is None:
        return torch.ops.nvfp4_group_gemm.grouped_mm(a, b, a_scale, b_scale, offsets, alpha, out_dtype)
    torch.ops.nvfp4_group_gemm.grouped_mm_out(a, b, a_scale, b_scale, offsets, alpha, out)
    return out
