"""The float64 reference and the closeness check (CPU only)."""

import math

import pytest
import torch

from nvfp4_group_gemm import reference
from nvfp4_group_gemm.reference import E2M1_VALUES


def e2m1_from_bits(code):
    """e2m1 value read straight from the bit fields: sign 3, exponent 2..1 (bias 1), mantissa 0."""
    exponent = (code >> 1) & 3
    mantissa = code & 1
    magnitude = mantissa * 0.5 if exponent == 0 else 2.0 ** (exponent - 1) * (1 + mantissa / 2)
    return math.copysign(magnitude, -1.0 if code & 8 else 1.0)


def e4m3_from_bits(code):
    """e4m3fn value read straight from the bit fields: sign 7, exponent 6..3 (bias 7), mantissa 2..0."""
    exponent = (code >> 3) & 15
    mantissa = code & 7
    magnitude = mantissa / 8 * 2.0**-6 if exponent == 0 else (1 + mantissa / 8) * 2.0 ** (exponent - 7)
    return math.copysign(magnitude, -1.0 if code & 0x80 else 1.0)


def pack_e2m1(values):
    """Packed float4_e2m1fn_x2 [rows, K/2, L] in the leaderboard layout from e2m1 values [rows, K, L]."""
    values = torch.as_tensor(values, dtype=torch.float64)
    table = torch.tensor(E2M1_VALUES, dtype=torch.float64)
    matches = values.unsqueeze(-1) == table
    assert bool(matches.any(-1).all()), "not an e2m1 value"
    codes = matches.to(torch.uint8).argmax(-1).to(torch.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return packed.permute(2, 0, 1).contiguous().view(torch.float4_e2m1fn_x2).permute(1, 2, 0)


def e4m3_scales(values):
    """Plain float8_e4m3fn scales [rows, K/16, L] from values that e4m3 represents exactly."""
    values = torch.as_tensor(values, dtype=torch.float32)
    scales = values.permute(2, 0, 1).contiguous().to(torch.float8_e4m3fn).permute(1, 2, 0)
    assert torch.equal(scales.float(), values), "not an e4m3 value"
    return scales


def make_data(groups):
    """Leaderboard 4-tuple from (a values, sfa values, b values, sfb values) per group, as nested lists [rows][.][L]."""
    abc, sfasfb, problem_sizes = [], [], []
    for a_values, sfa_values, b_values, sfb_values in groups:
        a, b = pack_e2m1(a_values), pack_e2m1(b_values)
        m, n, k, l = a.shape[0], b.shape[0], a.shape[1] * 2, a.shape[2]
        c = torch.randn(l, m, n).to(torch.float16).permute(1, 2, 0)
        abc.append((a, b, c))
        sfasfb.append((e4m3_scales(sfa_values), e4m3_scales(sfb_values)))
        problem_sizes.append((m, n, k, l))
    return abc, sfasfb, None, problem_sizes


def one_row(entries, k):
    """[1, k, 1] row of zeros with {index: value} entries."""
    row = torch.zeros(1, k, 1, dtype=torch.float64)
    for index, value in entries.items():
        row[0, index, 0] = value
    return row


def scale_row(values):
    return torch.tensor(values, dtype=torch.float64).view(1, -1, 1)


def test_e2m1_table_matches_the_bit_fields():
    assert len(E2M1_VALUES) == 16
    for code, value in enumerate(E2M1_VALUES):
        assert value == e2m1_from_bits(code)
        assert math.copysign(1.0, value) == math.copysign(1.0, e2m1_from_bits(code))


def test_decode_e2m1_all_bytes():
    every_byte = torch.arange(256, dtype=torch.uint8).view(1, 256, 1)
    decoded = reference.decode_e2m1(every_byte)
    assert decoded.dtype == torch.float64
    assert decoded.shape == (1, 512, 1)
    for byte in range(256):
        low, high = decoded[0, 2 * byte, 0].item(), decoded[0, 2 * byte + 1, 0].item()
        assert (low, high) == (e2m1_from_bits(byte & 0xF), e2m1_from_bits(byte >> 4))
    # The low nibble is the earlier element (code 1 = 0.5; code 6 = 4.0, code 7 = 6.0).
    assert decoded[0, 2 * 0x61 : 2 * 0x61 + 2, 0].tolist() == [0.5, 4.0]
    assert decoded[0, 2 * 0x71 : 2 * 0x71 + 2, 0].tolist() == [0.5, 6.0]
    # Code 8 is -0.
    assert math.copysign(1.0, decoded[0, 2 * 0x08, 0].item()) == -1.0


def test_decode_e2m1_float4_strided_input():
    values = torch.tensor(E2M1_VALUES * 4, dtype=torch.float64).view(2, 16, 2)  # [rows, K, L], every code
    packed = pack_e2m1(values)
    assert packed.dtype == torch.float4_e2m1fn_x2
    assert packed.stride() == (8, 1, 16)
    assert torch.equal(reference.decode_e2m1(packed), values)


def test_dequantize_every_finite_scale_code():
    finite_codes = [code for code in range(256) if code not in (0x7F, 0xFF)]
    k = 16 * len(finite_codes)
    ones = torch.full((1, k // 2, 1), 0x22, dtype=torch.uint8)  # both nibbles 1.0
    scales = torch.tensor(finite_codes, dtype=torch.uint8).view(1, -1, 1).view(torch.float8_e4m3fn)
    dequantized = reference.dequantize(ones, scales)
    expected = torch.tensor([e4m3_from_bits(code) for code in finite_codes], dtype=torch.float64)
    assert torch.equal(dequantized[0, :, 0], expected.repeat_interleave(16))


def test_dequantize_extreme_scales():
    # Blocks of 16: scale 2^-9 (smallest subnormal), 448 (largest), 0.
    a_values = one_row({0: 6.0, 1: -0.5, 16: 1.5, 31: -6.0, 32: 4.0}, 48)
    dequantized = reference.dequantize(pack_e2m1(a_values), e4m3_scales(scale_row([2.0**-9, 448.0, 0.0])))
    expected = one_row({0: 6.0 * 2.0**-9, 1: -0.5 * 2.0**-9, 16: 1.5 * 448, 31: -6.0 * 448, 32: 0.0}, 48)
    assert dequantized.dtype == torch.float64
    assert torch.equal(dequantized, expected)


def test_ref_kernel_one_dot_product_by_hand():
    a_values = one_row({0: 1.5, 1: -2.0, 16: 6.0, 32: 0.5, 63: -3.0}, 64)
    b_values = one_row({0: 4.0, 1: 1.0, 16: -0.5, 32: 3.0, 63: -6.0}, 64)
    sfa = scale_row([2.0, 0.5, 448.0, 2.0**-9])
    sfb = scale_row([1.0, 8.0, 0.25, 2.0**-9])
    # 1.5*2*4*1 - 2*2*1*1 + 6*0.5*(-0.5)*8 + 0.5*448*3*0.25 + (-3)*(-6)*2^-18 = 12 - 4 - 12 + 168 + 18*2^-18,
    # and fp16 near 164 has steps of 1/8.
    generated = make_data([(a_values, sfa, b_values, sfb)])
    (out,) = reference.ref_kernel(generated)
    assert out.dtype == torch.float16
    assert out.shape == (1, 1, 1)
    assert out.item() == 164.0


def test_ref_kernel_batches_differ():
    generator = torch.Generator().manual_seed(0)
    table = torch.tensor(E2M1_VALUES, dtype=torch.float64)
    m, n, k, l = 2, 3, 32, 2
    a_values = table[torch.randint(0, 16, (m, k, l), generator=generator)]
    b_values = table[torch.randint(0, 16, (n, k, l), generator=generator)]
    sfa = 2.0 ** torch.randint(-2, 3, (m, k // 16, l), generator=generator).double()
    sfb = 2.0 ** torch.randint(-2, 3, (n, k // 16, l), generator=generator).double()
    (out,) = reference.ref_kernel(make_data([(a_values, sfa, b_values, sfb)]))

    assert out.shape == (m, n, l)
    for batch in range(l):
        for row in range(m):
            for col in range(n):
                exact = sum(
                    a_values[row, i, batch].item()
                    * sfa[row, i // 16, batch].item()
                    * b_values[col, i, batch].item()
                    * sfb[col, i // 16, batch].item()
                    for i in range(k)
                )
                assert out[row, col, batch].item() == torch.tensor(exact).to(torch.float16).item()
    assert not torch.equal(out[:, :, 0], out[:, :, 1])


def test_ref_kernel_empty_group_and_fresh_outputs():
    k = 64
    rows = one_row({0: 1.0}, k)
    scales = scale_row([1.0] * 4)
    no_rows = torch.zeros(0, k, 2, dtype=torch.float64)
    no_scales = torch.zeros(0, k // 16, 2, dtype=torch.float64)
    two_batches = rows.expand(5, k, 2)
    two_batch_scales = scales.expand(5, k // 16, 2)
    generated = make_data([(rows, scales, rows, scales), (no_rows, no_scales, two_batches, two_batch_scales)])
    old_c = [c.clone() for _, _, c in generated[0]]

    first, empty = reference.ref_kernel(generated)
    assert first.item() == 1.0
    assert empty.shape == (0, 5, 2)
    assert empty.dtype == torch.float16
    for (_, _, c), before, out in zip(generated[0], old_c, (first, empty)):
        assert out is not c
        assert torch.equal(c, before)


# Exact sums 1024 + 0.5 + extra, where fp16 has steps of 1 near 1024: rounding to nearest, ties to even, must see the
# tiny 2^-20 that a float64 -> float32 -> float16 conversion loses.
@pytest.mark.parametrize(
    "a_extra,b_extra,expected",
    [
        ({32: 0.5}, {32: 0.5}, 1025.0),  # 1024.5 + 2^-20
        ({32: 0.5}, {32: -0.5}, 1024.0),  # 1024.5 - 2^-20
        ({}, {}, 1024.0),  # 1024.5, tie to even
        ({17: 1.0}, {17: 1.0}, 1026.0),  # 1025.5, tie to even
    ],
)
def test_ref_kernel_rounds_to_nearest_even(a_extra, b_extra, expected):
    a_values = one_row({0: 4.0, 16: 0.5, **a_extra}, 64)
    b_values = one_row({0: 4.0, 16: 1.0, **b_extra}, 64)
    sfa = scale_row([16.0, 1.0, 2.0**-9, 0.0])
    sfb = scale_row([4.0, 1.0, 2.0**-9, 0.0])
    (out,) = reference.ref_kernel(make_data([(a_values, sfa, b_values, sfb)]))
    assert out.item() == expected


def test_round_to_float16_near_midpoints():
    generator = torch.Generator().manual_seed(0)
    # Pairs of neighbouring positive finite fp16 values, subnormals included.
    low_bits = torch.randint(0x0001, 0x7BFF, (4000,), dtype=torch.int16, generator=generator)
    low = low_bits.view(torch.float16).double()
    high = (low_bits + 1).view(torch.float16).double()
    midpoint = (low + high) / 2
    nudge = torch.tensor([-(2.0**-35), 0.0, 2.0**-35], dtype=torch.float64).repeat(len(low) // 3 + 1)[: len(low)]
    x = midpoint * (1 + nudge)
    low_is_even = low_bits % 2 == 0
    expected = torch.where(nudge < 0, low, torch.where(nudge > 0, high, torch.where(low_is_even, low, high)))
    sign = torch.where(torch.rand(len(low), generator=generator) < 0.5, -1.0, 1.0).double()

    got = reference.round_to_float16(x * sign)
    assert got.dtype == torch.float16
    assert torch.equal(got.double(), expected * sign)


def test_check_close_passes_equal_and_tolerated():
    ref = torch.full((2, 3, 2), 1000.0, dtype=torch.float16)
    assert reference.check_close(ref.clone(), ref) == (True, "match")
    ok, _ = reference.check_close(ref + 0.5, ref)  # allowed: 1e-3 + 1e-3 * 1000
    assert ok


def test_check_close_reports_mismatches():
    ref = torch.zeros(2, 3, 2, dtype=torch.float16)
    out = ref.clone()
    out[1, 2, 0] = 0.5
    out[0, 0, 1] = 0.01
    ok, message = reference.check_close(out, ref)
    assert not ok
    assert "2 of 12" in message
    assert "(1, 2, 0)" in message
    assert "got 0.5" in message


def test_check_close_fails_on_nan():
    ref = torch.ones(4, 4, 1, dtype=torch.float16)
    out = ref.clone()
    out[3, 1, 0] = float("nan")
    ok, message = reference.check_close(out, ref)
    assert not ok
    assert "1 NaN" in message
    assert "(3, 1, 0)" in message


def test_check_close_fails_on_shape():
    ok, message = reference.check_close(torch.zeros(2, 3, 1), torch.zeros(3, 2, 1))
    assert not ok
    assert "shape" in message
