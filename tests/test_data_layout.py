"""Blocked scale layout and the input generator (CPU only)."""

import pytest
import torch

from nvfp4_group_gemm import data, reference

E4M3_NAN_CODES = (0x7F, 0xFF)


def independent_blocked_bytes(plain):
    """Flat blocked buffer built by tiling a padded plain matrix, written without blocked_offset.

    plain: [rows, cols, L] of any dtype. Rows pad to a multiple of 128 and columns to a multiple of 4 (with -1).
    A padded [128 * rest_mn, 4 * rest_k] matrix, read as (rest_mn, 4, 32, rest_k, 4), has row = 128 mn + 32 a + b and
    column = 4 kk + c; an atom is ordered (b, a, c) and atoms run over (mn, kk), batches last.
    """
    rows, cols, l = plain.shape
    rest_mn = data.ceil_div(rows, 128)
    rest_k = data.ceil_div(cols, 4)
    batches = []
    for batch in range(l):
        padded = torch.full((rest_mn * 128, rest_k * 4), -1, dtype=plain.dtype)
        padded[:rows, :cols] = plain[:, :, batch]
        tiles = padded.view(rest_mn, 4, 32, rest_k, 4).permute(0, 3, 2, 1, 4)
        batches.append(tiles.reshape(-1))
    return torch.cat(batches)


def flat_blocked_bytes(blocked):
    """The contiguous buffer behind a blocked view, as bytes in memory order."""
    in_memory_order = blocked.permute(5, 2, 4, 0, 1, 3)
    assert in_memory_order.is_contiguous()
    return in_memory_order.view(torch.uint8).reshape(-1)


def all_positions(rows, cols, l):
    r = torch.arange(rows).view(rows, 1, 1).expand(rows, cols, l)
    j = torch.arange(cols).view(1, cols, 1).expand(rows, cols, l)
    b = torch.arange(l).view(1, 1, l).expand(rows, cols, l)
    return r, j, b


def random_plain_scales(rows, cols, l, seed):
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 0x7F, (l, rows, cols), dtype=torch.uint8, generator=generator)
    return codes.view(torch.float8_e4m3fn).permute(1, 2, 0)


def as_bytes(tensor):
    return tensor.view(torch.uint8)


LAYOUT_CASES = [(rows, k, l) for rows in (1, 32, 127, 128, 129, 300) for k in (64, 128, 320) for l in (1, 2)]


@pytest.mark.parametrize("rows,k,l", LAYOUT_CASES)
def test_blocked_offset_matches_independent_tiling(rows, k, l):
    cols = k // data.SF_VEC
    r, j, b = all_positions(rows, cols, l)
    ids = (b * rows + r) * cols + j
    tiled = independent_blocked_bytes(ids)

    offsets = data.blocked_offset(r, j, b, rows, k)
    assert tiled.numel() == torch.Size(data.blocked_scale_shape(rows, k, l)).numel()
    assert torch.equal(tiled[offsets], ids)


def test_blocked_offset_on_python_ints():
    # rows 300 -> rest_mn 3; K 320 -> 20 scale columns -> rest_k 5.
    # atom (1 * 3 + 1) * 5 + 1 = 21; inside: (129 % 32) * 16 + 0 * 4 + 5 % 4.
    offset = data.blocked_offset(129, 5, 1, 300, 320)
    assert isinstance(offset, int)
    assert offset == 21 * 512 + 16 + 1


@pytest.mark.parametrize("rows,k,l", LAYOUT_CASES)
def test_to_blocked_places_every_scale(rows, k, l):
    cols = k // data.SF_VEC
    plain = random_plain_scales(rows, cols, l, seed=rows * 1000 + k + l)
    blocked = data.to_blocked(plain, generator=torch.Generator().manual_seed(1))

    assert blocked.shape == data.blocked_scale_shape(rows, k, l)
    assert blocked.dtype == torch.float8_e4m3fn
    r, j, b = all_positions(rows, cols, l)
    flat = flat_blocked_bytes(blocked)
    assert torch.equal(flat[data.blocked_offset(r, j, b, rows, k)], as_bytes(plain))
    tiled = independent_blocked_bytes(as_bytes(plain).to(torch.int16))
    assert torch.equal(flat[tiled >= 0], tiled[tiled >= 0].to(torch.uint8))
    six_d = as_bytes(blocked)[r % 32, (r % 128) // 32, r // 128, j % 4, j // 4, b]
    assert torch.equal(six_d, as_bytes(plain))


@pytest.mark.parametrize("rows,k", [(1, 64), (127, 320), (129, 96), (300, 128)])
def test_to_blocked_padding_is_nonzero_garbage(rows, k):
    cols = k // data.SF_VEC
    plain = random_plain_scales(rows, cols, 2, seed=7)
    flat = flat_blocked_bytes(data.to_blocked(plain, generator=torch.Generator().manual_seed(2)))

    valid = torch.zeros(flat.numel(), dtype=torch.bool)
    valid[data.blocked_offset(*all_positions(rows, cols, 2), rows, k)] = True
    padding = flat[~valid]
    assert padding.numel() > 0
    assert bool((padding != 0).all())
    assert not any(bool((padding == code).any()) for code in E4M3_NAN_CODES)
    assert padding.unique().numel() > 10  # random, not one repeated value


def test_to_blocked_fill_and_device_arguments():
    plain = random_plain_scales(3, 4, 1, seed=3)
    blocked = data.to_blocked(plain, fill=448.0, device="cpu")
    flat = flat_blocked_bytes(blocked)
    valid = torch.zeros(flat.numel(), dtype=torch.bool)
    valid[data.blocked_offset(*all_positions(3, 4, 1), 3, 64)] = True
    assert bool((flat[~valid] == 0x7E).all())
    assert blocked.device == torch.device("cpu")


def test_to_blocked_empty_rows():
    plain = random_plain_scales(0, 4, 1, seed=0)
    blocked = data.to_blocked(plain)
    assert blocked.shape == (32, 4, 0, 4, 1, 1)


def check_group_layout(a, b, c, sfa, sfb, sfa_r, sfb_r, sizes):
    m, n, k, l = sizes
    for operand, rows in ((a, m), (b, n)):
        assert operand.shape == (rows, k // 2, l)
        assert operand.dtype == torch.float4_e2m1fn_x2
        assert operand.permute(2, 0, 1).is_contiguous()
        if rows:
            assert operand.stride() == (k // 2, 1, rows * k // 2)
    assert c.shape == (m, n, l)
    assert c.dtype == torch.float16
    assert c.permute(2, 0, 1).is_contiguous()
    if m:
        assert c.stride() == (n, 1, m * n)
    for scales, blocked, rows in ((sfa, sfa_r, m), (sfb, sfb_r, n)):
        assert scales.shape == (rows, k // 16, l)
        assert scales.dtype == torch.float8_e4m3fn
        assert scales.device == torch.device("cpu")
        assert scales.permute(2, 0, 1).is_contiguous()
        assert blocked.shape == data.blocked_scale_shape(rows, k, l)
        assert blocked.dtype == torch.float8_e4m3fn
        r, j, batch = all_positions(rows, k // 16, l)
        assert torch.equal(flat_blocked_bytes(blocked)[data.blocked_offset(r, j, batch, rows, k)], as_bytes(scales))


@pytest.mark.parametrize("full_range", [False, True])
def test_generate_input_layout(full_range):
    m, n, k = [96, 0, 40], [128, 64, 72], [256, 128, 320]
    abc, sfasfb, sfasfb_reordered, problem_sizes = data.generate_input(
        m, n, k, l=2, seed=5, full_range=full_range, device="cpu"
    )

    assert problem_sizes == [(96, 128, 256, 2), (0, 64, 128, 2), (40, 72, 320, 2)]
    assert all(type(v) is int for sizes in problem_sizes for v in sizes)
    for (a, b, c), (sfa, sfb), (sfa_r, sfb_r), sizes in zip(abc, sfasfb, sfasfb_reordered, problem_sizes):
        check_group_layout(a, b, c, sfa, sfb, sfa_r, sfb_r, sizes)
        assert all(t.device == torch.device("cpu") for t in (a, b, c, sfa_r, sfb_r))
    assert bool(abc[0][2].isfinite().all())
    assert abc[0][2].float().std() > 0.5  # c starts as random normal values


def test_generate_input_broadcasts_n_and_k():
    _, _, _, problem_sizes = data.generate_input([8, 16], 32, 64, device="cpu")
    assert problem_sizes == [(8, 32, 64, 1), (16, 32, 64, 1)]


def test_generate_input_rejects_mismatched_group_counts():
    with pytest.raises(ValueError):
        data.generate_input([8, 16], [32], 64, device="cpu")


def test_generate_input_default_mode_value_set():
    abc, sfasfb, _, _ = data.generate_input([128, 64], [256, 128], 512, seed=1, device="cpu")
    for (a, b, _), (sfa, sfb) in zip(abc, sfasfb):
        for operand in (a, b):
            assert set(reference.decode_e2m1(operand).unique().tolist()) == {0.0, 0.5, 1.0, 1.5, -0.5, -1.0, -1.5}
            assert bool((as_bytes(operand) & 0x44 == 0).all())
        for scales in (sfa, sfb):
            assert set(scales.float().unique().tolist()) == {1.0, 2.0}


def scale_codes(sf_pairs, side):
    return torch.cat([as_bytes(pair[side]).reshape(-1) for pair in sf_pairs])


def test_generate_input_full_range_covers_all_codes():
    abc, sfasfb, sfasfb_reordered, _ = data.generate_input(
        [64, 0, 40], [128, 64, 72], 256, l=2, seed=2, full_range=True, device="cpu"
    )
    packed = torch.cat([as_bytes(t).reshape(-1) for group in abc for t in group[:2]])
    assert set((packed & 0xF).unique().tolist()) == set(range(16))
    assert set((packed >> 4).unique().tolist()) == set(range(16))

    for side in (0, 1):
        codes = scale_codes(sfasfb, side)
        assert {0x7E, 0x01, 0x00} <= set(codes.unique().tolist())
        assert codes.unique().numel() > 100  # spread over the whole e4m3 range
        blocked = scale_codes(sfasfb_reordered, side)
        for code in E4M3_NAN_CODES:
            assert not bool((codes == code).any())
            assert not bool((blocked == code).any())


def test_generate_input_full_range_extremes_in_small_calls():
    # Three scale entries per side in total is enough; one scale column per group must not overflow either.
    _, sfasfb, _, _ = data.generate_input([3, 1], [1, 3], 16, seed=4, full_range=True, device="cpu")
    for side in (0, 1):
        assert {0x7E, 0x01, 0x00} <= set(scale_codes(sfasfb, side).tolist())


@pytest.mark.parametrize("k", [64, 7168, 16384])
def test_full_range_reference_is_finite(k):
    generated = data.generate_input([64, 0, 40], [96, 64, 32], k, seed=k, full_range=True, device="cpu")
    for out in reference.ref_kernel(generated):
        assert bool(out.isfinite().all())


def test_full_range_reference_is_finite_with_one_scale_column():
    generated = data.generate_input([5, 7], [6, 4], 16, seed=0, full_range=True, device="cpu")
    for out in reference.ref_kernel(generated):
        assert bool(out.isfinite().all())


def all_tensors(generated):
    abc, sfasfb, sfasfb_reordered, _ = generated
    return [t for groups in (abc, sfasfb, sfasfb_reordered) for group in groups for t in group]


def same_bytes(x, y):
    return x.dtype == y.dtype and x.shape == y.shape and torch.equal(as_bytes_any(x), as_bytes_any(y))


def as_bytes_any(tensor):
    return tensor.view(torch.uint8) if tensor.element_size() == 1 else tensor.view(torch.int16)


@pytest.mark.parametrize("full_range", [False, True])
def test_generate_input_is_reproducible(full_range):
    args = ([96, 40], [128, 72], 256)
    first = data.generate_input(*args, l=2, seed=11, full_range=full_range, device="cpu")
    again = data.generate_input(*args, l=2, seed=11, full_range=full_range, device="cpu")
    other = data.generate_input(*args, l=2, seed=12, full_range=full_range, device="cpu")
    assert first[3] == again[3] == other[3]
    assert all(same_bytes(x, y) for x, y in zip(all_tensors(first), all_tensors(again)))
    assert not any(same_bytes(x, y) for x, y in zip(all_tensors(first), all_tensors(other)))


def test_clone_data_is_a_deep_copy_with_strides():
    generated = data.generate_input([96, 0, 40], [128, 64, 72], 256, l=2, seed=3, device="cpu")
    copy = data.clone_data(generated)
    assert copy[3] == generated[3]
    for original, cloned in zip(all_tensors(generated), all_tensors(copy)):
        assert same_bytes(original, cloned)
        assert cloned.stride() == original.stride()
        assert cloned.device == original.device
        assert cloned.numel() == 0 or cloned.data_ptr() != original.data_ptr()


def test_poison_outputs_fills_every_c_with_nan():
    generated = data.generate_input([96, 40], [128, 72], 256, l=2, device="cpu")
    data.poison_outputs(generated)
    for _, _, c in generated[0]:
        assert bool(c.isnan().all())


def test_every_product_input_covers_every_pair_of_values():
    """The exhaustive exactness input (data.every_product_input): its rows decode to all 16 e2m1 codes times all 126
    positive finite e4m3 scales, once each, and its reference outputs reach fp16 subnormals, infinities and zeros."""
    from nvfp4_group_gemm.reference import dequantize, ref_kernel

    inputs = data.every_product_input(device="cpu")
    (a, b, _), (sfa, sfb) = inputs[0][0], inputs[1][0]
    for packed, sf in ((a, sfa), (b, sfb)):
        values = dequantize(packed, sf)[:, :, 0]
        assert bool((values[:, 1:] == 0).all())  # one nonzero position per row
        codes = as_bytes(packed)[:, 0, 0] & 0xF
        scales = as_bytes(sf)[:, 0, 0]
        assert sorted(zip(codes.tolist(), scales.tolist())) == [(c, s) for c in range(16) for s in range(1, 127)]
    reference = ref_kernel(inputs)[0][:, :, 0].to(torch.float64)
    expected = dequantize(a, sfa)[:, 0, 0].view(-1, 1) * dequantize(b, sfb)[:, 0, 0].view(1, -1)
    finite = expected.abs() < 65520  # below fp16's overflow threshold
    assert bool((reference[finite] == expected[finite]).all())  # these products are exact in fp16
    assert bool(reference.isinf().any()) and bool(((reference != 0) & (reference.abs() < 2.0**-14)).any())
    assert bool((reference == 0).any())
