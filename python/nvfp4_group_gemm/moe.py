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
Output: [T, N] of out_dtype (bfloat16 or float16), written into `out` when given; a new tensor's rows past
offsets[E - 1] are unspecified (zero on the CPU). The result is the exact product, times alpha, rounded once.

grouped_mm is a C function: it checks the arguments (TypeError / ValueError naming the argument, nothing written)
and launches the grouped GEMM on torch's current stream. The GPU reads `offsets` and derives the layout from them
(ends clamped into [previous end, T], so no offsets can send a read or write outside its tensor): on Hopper, up to
256 experts, every block of the stream-K kernel's pre-pass derives it itself and its planning block writes the
group table; with more experts, and for the portable kernel (every other GPU), a small table kernel does it
first. The host never reads `offsets` and never synchronises, so one captured CUDA graph serves any
routing. On CPU tensors the float64 reference runs. NVFP4_CHECK_OFFSETS=1 (or _C._set_check_offsets(True)) adds a
debug check: the offsets are read on the host (a synchronisation) and out-of-range or decreasing ones raise.

This module also registers torch.ops.nvfp4_group_gemm.grouped_mm (functional) and grouped_mm_out (writes `out`),
with fake implementations; torch.compile traces grouped_mm as those ops.
"""

import torch

from . import _C
from .data import SF_VEC, ceil_div
from .reference import decode_e2m1, round_to

ATOM_ROWS = 128

# The entry point: a C function (argument checks and launch in C, ~1 us of host time); under torch.compile the
# substitute below traces it as the torch.ops ops instead.
grouped_mm = _C.grouped_mm


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
    tokens, k = a.shape[0], 2 * a.shape[1]
    n = b.shape[1]
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


def from_leaderboard(data):
    """grouped_mm's (a, b, a_scale, b_scale, offsets) holding the same problem as a leaderboard call (custom_kernel's
    data, every group with the same N and K and L = 1), on its device: tokens and a's blocked scales concatenated
    group after group, weights and their scales stacked. Each leaderboard scale tensor is a permuted view of the
    blocked layout's bytes (32x4x4 atoms, 128 rows by 64 K each), which are also what grouped_mm reads."""
    abc, _, sf_reordered, sizes = data
    ns, ks, ls = {n for _, n, _, _ in sizes}, {k for _, _, k, _ in sizes}, {l for _, _, _, l in sizes}
    if len(ns) != 1 or len(ks) != 1 or ls != {1}:
        raise ValueError(f"from_leaderboard: expected one N, one K and L = 1 in every group, got sizes {sizes}")
    k = ks.pop()

    def blocked_bytes(scales):  # [32, 4, row blocks, 4, k blocks, 1] -> its [row blocks * 128, K/16] bytes
        return scales.permute(5, 2, 4, 0, 1, 3).contiguous().view(torch.uint8).view(-1, k // SF_VEC)

    a = torch.cat([t[:, :, 0].view(torch.uint8) for t, _, _ in abc]).view(torch.float4_e2m1fn_x2)
    b = torch.stack([t[:, :, 0].view(torch.uint8) for _, t, _ in abc]).view(torch.float4_e2m1fn_x2)
    a_scale = torch.cat([blocked_bytes(sfa) for sfa, _ in sf_reordered]).view(torch.float8_e4m3fn)
    b_scale = torch.stack([blocked_bytes(sfb) for _, sfb in sf_reordered]).view(torch.float8_e4m3fn)
    ends = torch.tensor([m for m, _, _, _ in sizes], dtype=torch.int64).cumsum(0).to(torch.int32)
    return a.contiguous(), b.contiguous(), a_scale, b_scale, ends.to(a.device)


# ---- torch.ops registration ----
# Both ops run grouped_mm (so their checks are its checks); torch.compile traces them through their fake
# implementations, and traces grouped_mm itself as them (substitute_in_graph).

@torch.library.custom_op("nvfp4_group_gemm::grouped_mm_out", mutates_args=("out",))
def _grouped_mm_out(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                    offsets: torch.Tensor, alpha: torch.Tensor | None, out: torch.Tensor) -> None:
    _C.grouped_mm(a, b, a_scale, b_scale, offsets, alpha=alpha, out_dtype=out.dtype, out=out)


@_grouped_mm_out.register_fake
def _(a, b, a_scale, b_scale, offsets, alpha, out):
    return None


@torch.library.custom_op("nvfp4_group_gemm::grouped_mm", mutates_args=())
def _grouped_mm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                offsets: torch.Tensor, alpha: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    return _C.grouped_mm(a, b, a_scale, b_scale, offsets, alpha=alpha, out_dtype=out_dtype)


@_grouped_mm.register_fake
def _(a, b, a_scale, b_scale, offsets, alpha, out_dtype):
    return a.new_empty((a.shape[0], b.shape[1]), dtype=out_dtype)


@torch.compiler.substitute_in_graph(_C.grouped_mm, skip_signature_check=True)
def _grouped_mm_in_graph(a, b, a_scale, b_scale, offsets, *, alpha=None, out_dtype=torch.bfloat16, out=None):
    if out is None:
        return torch.ops.nvfp4_group_gemm.grouped_mm(a, b, a_scale, b_scale, offsets, alpha, out_dtype)
    torch.ops.nvfp4_group_gemm.grouped_mm_out(a, b, a_scale, b_scale, offsets, alpha, out)
    return out
