"""Float64 reference for the NVFP4 grouped GEMM, and the leaderboard's closeness check.

Dequantized operands are exact in float64 (e2m1 has 2 significant bits, e4m3 has 4). The float64 sum is exact for
the leaderboard's data and otherwise off by far less than an fp16 half-ulp; it is then rounded once to fp16.
"""

import torch

from .data import SF_VEC

# e2m1 value of each 4-bit code: bit 3 sign, bits 2..1 exponent, bit 0 mantissa.
E2M1_VALUES = (
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
    -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
)  # fmt: skip


def decode_e2m1(packed):
    """float64 [rows, K, L] from packed e2m1 [rows, K/2, L] (float4_e2m1fn_x2 or uint8, any strides).

    Byte i holds element 2i in its low nibble and element 2i+1 in its high nibble.
    """
    codes = packed.view(torch.uint8).long()
    table = torch.tensor(E2M1_VALUES, dtype=torch.float64, device=codes.device)
    even = table[codes & 0xF]
    odd = table[codes >> 4]
    rows, half_k, l = codes.shape
    return torch.stack((even, odd), dim=2).reshape(rows, 2 * half_k, l)


def dequantize(packed, sf):
    """float64 [rows, K, L]: e2m1 value of (row, k) times its scale sf[row, k // 16] (plain float8_e4m3fn layout)."""
    values = decode_e2m1(packed)
    # Every e4m3 value is a float32 value, so this conversion is exact.
    scales = sf.to(packed.device).to(torch.float32).to(torch.float64)
    return values * scales.repeat_interleave(SF_VEC, dim=1)


def round_to(x, dtype):
    """float64 -> float16 or bfloat16, rounded once to nearest-even.

    torch converts float64 to float16 through float32 on CPU and CUDA alike, rounding twice: 1024.5 + 2^-20 becomes
    1024, not 1025. Rounding to float32 "to odd" instead (an inexact result keeps an odd last bit, so it never lands
    on a tie of the narrower type) makes the second rounding give the correctly rounded value; that needs float32 to
    carry at least 2 more bits than the target, and it carries 13 more than float16 and 16 more than bfloat16.
    """
    nearest = x.to(torch.float32)
    overshot = nearest.to(torch.float64).abs() > x.abs()
    toward_zero = torch.where(overshot, torch.nextafter(nearest, torch.zeros_like(nearest)), nearest)
    inexact = toward_zero.to(torch.float64) != x
    # Setting the lowest mantissa bit of the truncated value picks whichever neighbour is odd.
    to_odd = (toward_zero.view(torch.int32) | inexact.to(torch.int32)).view(torch.float32)
    return to_odd.to(dtype)


def round_to_float16(x):
    """float64 -> float16, rounded once (round_to)."""
    return round_to(x, torch.float16)


def ref_kernel(data):
    """New fp16 [M, N, L] tensors, c = a @ b^T per group and batch, from the plain scales (data[1])."""
    abc, sfasfb, _, _ = data
    outputs = []
    for (a, b, _), (sfa, sfb) in zip(abc, sfasfb):
        a_values = dequantize(a, sfa).permute(2, 0, 1)  # [L, M, K]
        b_values = dequantize(b, sfb).permute(2, 0, 1)  # [L, N, K]
        product = torch.bmm(a_values, b_values.transpose(1, 2))  # [L, M, N]
        outputs.append(round_to_float16(product).permute(1, 2, 0))
    return outputs


def check_close(out, ref, rtol=1e-3, atol=1e-3):
    """(ok, message): every element must satisfy |out - ref| <= atol + rtol * |ref|; NaN in out always fails."""
    if out.shape != ref.shape:
        return False, f"shape mismatch: got {tuple(out.shape)}, expected {tuple(ref.shape)}"
    got = out.to(torch.float64)
    expected = ref.to(device=out.device, dtype=torch.float64)
    mismatched = ~torch.isclose(got, expected, rtol=rtol, atol=atol)
    mismatches = int(mismatched.sum())
    if mismatches == 0:
        return True, "match"

    error = (got - expected).abs().nan_to_num(nan=float("inf"))
    error = torch.where(mismatched, error, -1.0)
    worst = tuple(int(i) for i in torch.unravel_index(error.argmax(), error.shape))
    nans = int(got.isnan().sum())
    nan_note = f", {nans} NaN" if nans else ""
    return False, (
        f"{mismatches} of {out.numel()} elements mismatch (rtol={rtol}, atol={atol}){nan_note}; "
        f"worst at {worst}: got {got[worst].item()}, expected {expected[worst].item()}"
    )
