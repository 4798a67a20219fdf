"""Inputs for the NVFP4 grouped GEMM in the leaderboard's format.

A call takes `data = (abc, sfasfb, sfasfb_reordered, problem_sizes)`, one entry per group:
abc[i] = (a, b, c), sfasfb[i] = (sfa, sfb) in the plain layout on the CPU,
sfasfb_reordered[i] = the same scales in the blocked layout on the device, problem_sizes[i] = (M, N, K, L).
Everything random is drawn on the CPU from one seeded generator, so a seed gives the same data on every device.
"""

import torch

SF_VEC = 16  # e2m1 elements that share one e4m3 scale

# One blocked-layout atom holds the scales of 128 rows x 4 scale columns (64 elements of K) in 512 bytes.
ATOM_ROWS = 128
ATOM_SCALE_COLS = 4
ATOM_BYTES = 512

E4M3_MAX = 448.0
E4M3_CODE_MAX = 0x7E  # 448
E4M3_CODE_MIN_SUBNORMAL = 0x01  # 2^-9
E4M3_CODE_ONE = 0x38
E4M3_CODE_TWO = 0x40
E4M3_POSITIVE_FINITE = 126  # codes 0x01 .. 0x7E
E2M1_CODES = 16

# The leaderboard keeps the sign bit and the low exponent/mantissa bits of each nibble: 0, +-0.5, +-1, +-1.5.
LEADERBOARD_NIBBLE_MASK = 0xBB

# Full-range scales: sfa ~ 2^(t + u), sfb ~ 2^(-1 - t + u'), so sfa * sfb stays near 2^(u + u' - 1) whatever t is.
SCALE_EXPONENT_LOW = -9.0
SCALE_EXPONENT_HIGH = 8.0


def ceil_div(a, b):
    return (a + b - 1) // b


def blocked_scale_shape(rows, k, l):
    """Shape of the blocked scale view: (32, 4, rest_mn, 4, rest_k, L)."""
    rest_mn = ceil_div(rows, ATOM_ROWS)
    rest_k = ceil_div(k // SF_VEC, ATOM_SCALE_COLS)
    return (32, 4, rest_mn, 4, rest_k, l)


def blocked_offset(r, j, l, rows, k):
    """Byte offset of the scale of row r, scale column j, batch l in the blocked buffer.

    The buffer is contiguous in the order (L, rest_mn, rest_k, 32, 4, 4). r, j and l may be Python ints or integer
    tensors (they broadcast); rows and k are the plain problem sizes.
    """
    _, _, rest_mn, _, rest_k, _ = blocked_scale_shape(rows, k, 1)
    atom = (l * rest_mn + r // ATOM_ROWS) * rest_k + j // ATOM_SCALE_COLS
    return atom * ATOM_BYTES + (r % 32) * 16 + (r % ATOM_ROWS) // 32 * 4 + j % ATOM_SCALE_COLS


def to_blocked(sf, fill=None, generator=None, device=None):
    """Blocked view [32, 4, rest_mn, 4, rest_k, L] of plain scales sf [rows, K/16, L] (float8_e4m3fn).

    Padding (rows past `rows`, scale columns past K/16) holds `fill` when given, else random nonzero finite codes drawn
    from `generator`: a kernel that reads padding then produces wrong results instead of harmless zeros.
    """
    device = sf.device if device is None else torch.device(device)
    rows, cols, l = sf.shape
    k = cols * SF_VEC
    shape = blocked_scale_shape(rows, k, l)
    _, _, rest_mn, _, rest_k, _ = shape
    size = l * rest_mn * rest_k * ATOM_BYTES

    if fill is None:
        padding = torch.randint(1, E4M3_CODE_MAX + 1, (size,), dtype=torch.uint8, generator=generator)
    else:
        padding = torch.full((size,), fill, dtype=torch.float32).to(torch.float8_e4m3fn).view(torch.uint8)
    buffer = padding.to(device)

    r = torch.arange(rows, device=device).view(rows, 1, 1)
    j = torch.arange(cols, device=device).view(1, cols, 1)
    b = torch.arange(l, device=device).view(1, 1, l)
    offsets = blocked_offset(r, j, b, rows, k)
    buffer[offsets.reshape(-1)] = sf.view(torch.uint8).to(device).reshape(-1)

    atoms = buffer.view(torch.float8_e4m3fn).view(l, rest_mn, rest_k, 32, 4, 4)
    return atoms.permute(3, 4, 1, 5, 2, 0)


def _as_group_sizes(value, groups, name):
    sizes = [value] * groups if isinstance(value, int) else [int(v) for v in value]
    if len(sizes) != groups:
        raise ValueError(f"{name} has {len(sizes)} entries, m has {groups}")
    return sizes


def _random_bytes(shape, full_range, generator):
    codes = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return codes if full_range else codes & LEADERBOARD_NIBBLE_MASK


def _leaderboard_scales(shape, generator):
    """Scale codes 1.0 or 2.0, uniformly."""
    pick_two = torch.randint(0, 2, shape, dtype=torch.uint8, generator=generator)
    return E4M3_CODE_ONE + pick_two * (E4M3_CODE_TWO - E4M3_CODE_ONE)


def _e4m3_codes_near(exponent):
    """e4m3 codes nearest to 2^exponent.

    Clamped first: torch's CPU conversion saturates at 448, but its CUDA conversion turns larger values into NaN.
    """
    values = torch.exp2(exponent).clamp(max=E4M3_MAX)
    return values.to(torch.float8_e4m3fn).view(torch.uint8)


def _full_range_scales(rows_a, rows_b, cols, l, generator, a_hosts_max, b_hosts_max):
    """Scale codes over the whole e4m3 range (subnormals and zero included) whose products stay moderate.

    a_hosts_max / b_hosts_max: the caller will put 448 at the first sfa entry / last sfb entry. Their exponent cells
    are pinned so that the partner scales in the same column are tiny and the 448 cannot overflow fp16.
    """
    span = SCALE_EXPONENT_HIGH - SCALE_EXPONENT_LOW
    t = SCALE_EXPONENT_LOW + span * torch.rand((l, 1, cols), dtype=torch.float64, generator=generator)
    if a_hosts_max:
        t[0, 0, 0] = SCALE_EXPONENT_HIGH
    if b_hosts_max:
        t[-1, 0, -1] = SCALE_EXPONENT_LOW
    u_a = 2 * torch.rand((l, rows_a, cols), dtype=torch.float64, generator=generator) - 1
    u_b = 2 * torch.rand((l, rows_b, cols), dtype=torch.float64, generator=generator) - 1
    return _e4m3_codes_near(t + u_a), _e4m3_codes_near(-1 - t + u_b)


def _extreme_scale_hosts(m, n, scale_cols, l):
    """Groups whose sfa / sfb receive the exact codes 448, 2^-9 and 0 (None where no sf has 3 entries).

    sfa's 448 sits in exponent cell (l=0, j=0) and sfb's in (l=L-1, j=last); one group can host both only when those
    cells differ, otherwise the two 448s would meet in one output and overflow fp16.
    """
    host_a = next((g for g in range(len(m)) if m[g] * scale_cols[g] * l >= 3), None)
    host_b = next(
        (
            g
            for g in range(len(n))
            if n[g] * scale_cols[g] * l >= 3 and not (g == host_a and scale_cols[g] * l == 1)
        ),
        None,
    )
    return host_a, host_b


def _plain_scales(codes):
    """Plain [rows, K/16, L] float8 view of codes stored contiguous as [L, rows, K/16]."""
    return codes.view(torch.float8_e4m3fn).permute(1, 2, 0)


def generate_input(m, n, k, l=1, seed=0, *, full_range=False, device="cuda"):
    """Leaderboard 4-tuple for groups of sizes m[i] x n[i] x k[i] with L batches.

    m is a sequence of ints; n and k are sequences of the same length or one int for all groups.
    Default mode copies the leaderboard's value set: e2m1 values 0, +-0.5, +-1, +-1.5 and scales 1 or 2.
    full_range=True uses all 16 e2m1 codes and scales across the whole e4m3 range, with the exact codes 448, 2^-9 and
    0 present in some sfa and some sfb; fp16 outputs stay finite for K up to 16384.
    """
    m = [int(v) for v in m]
    n = _as_group_sizes(n, len(m), "n")
    k = _as_group_sizes(k, len(m), "k")
    if any(kk % SF_VEC for kk in k):
        raise ValueError(f"every k must be a multiple of {SF_VEC}, got {k}")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    scale_cols = [kk // SF_VEC for kk in k]
    host_a, host_b = _extreme_scale_hosts(m, n, scale_cols, l) if full_range else (None, None)

    abc, sfasfb, sfasfb_reordered, problem_sizes = [], [], [], []
    for g, (mm, nn, kk) in enumerate(zip(m, n, k)):
        # Draw on the CPU, contiguous as [L, rows, cols]; the leaderboard's tensors are permuted views of that.
        a_bytes = _random_bytes((l, mm, kk // 2), full_range, generator)
        b_bytes = _random_bytes((l, nn, kk // 2), full_range, generator)
        c_values = torch.randn((l, mm, nn), generator=generator).to(torch.float16)
        if full_range:
            sfa_codes, sfb_codes = _full_range_scales(
                mm, nn, scale_cols[g], l, generator, g == host_a, g == host_b
            )
        else:
            sfa_codes = _leaderboard_scales((l, mm, scale_cols[g]), generator)
            sfb_codes = _leaderboard_scales((l, nn, scale_cols[g]), generator)
        if g == host_a:
            sfa_codes.view(-1)[:3] = torch.tensor([E4M3_CODE_MAX, E4M3_CODE_MIN_SUBNORMAL, 0], dtype=torch.uint8)
        if g == host_b:
            sfb_codes.view(-1)[-3:] = torch.tensor([0, E4M3_CODE_MIN_SUBNORMAL, E4M3_CODE_MAX], dtype=torch.uint8)

        a = a_bytes.to(device).view(torch.float4_e2m1fn_x2).permute(1, 2, 0)
        b = b_bytes.to(device).view(torch.float4_e2m1fn_x2).permute(1, 2, 0)
        c = c_values.to(device).permute(1, 2, 0)
        sfa = _plain_scales(sfa_codes)
        sfb = _plain_scales(sfb_codes)
        abc.append((a, b, c))
        sfasfb.append((sfa, sfb))
        sfasfb_reordered.append(
            (to_blocked(sfa, generator=generator, device=device), to_blocked(sfb, generator=generator, device=device))
        )
        problem_sizes.append((mm, nn, kk, l))
    return abc, sfasfb, sfasfb_reordered, problem_sizes


def every_product_input(device="cuda"):
    """One group whose outputs are every product of two decoded operands: c[m, n] = value(m) * value(n), where row r
    of a and of b holds e2m1 code r % 16 at k = 0, scaled by the positive finite e4m3 code 1 + r // 16 (0x01 .. 0x7E,
    subnormals included), and zeros at every other k. M = N = 16 x 126 = 2016, K = 64, L = 1.

    Each output is one exact product rounded once to fp16, so a kernel must match the float64 reference exactly:
    the products run from 2^-20 (fp16 subnormal) past fp16's range (+-inf), through both signs and zeros.
    """
    device = torch.device(device)
    rows, k = E2M1_CODES * E4M3_POSITIVE_FINITE, 64
    index = torch.arange(rows)
    packed = torch.zeros((1, rows, k // 2), dtype=torch.uint8)
    packed[0, :, 0] = (index % E2M1_CODES).to(torch.uint8)  # element 0: byte 0's low nibble
    codes = torch.full((1, rows, k // SF_VEC), E4M3_CODE_ONE, dtype=torch.uint8)  # the zero groups' scale: 1
    codes[0, :, 0] = (1 + index // E2M1_CODES).to(torch.uint8)
    a = packed.to(device).view(torch.float4_e2m1fn_x2).permute(1, 2, 0)
    b = packed.clone().to(device).view(torch.float4_e2m1fn_x2).permute(1, 2, 0)
    c = torch.zeros((1, rows, rows), dtype=torch.float16, device=device).permute(1, 2, 0)
    sfa, sfb = _plain_scales(codes), _plain_scales(codes.clone())
    blocked = (to_blocked(sfa, fill=1.0, device=device), to_blocked(sfb, fill=1.0, device=device))
    return [(a, b, c)], [(sfa, sfb)], [blocked], [(rows, rows, k, 1)]


def _clone_with_strides(tensor):
    copy = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, device=tensor.device)
    if tensor.element_size() == 1:
        # fp4/fp8 have few kernels of their own; raw bytes copy the same on every device.
        copy.view(torch.uint8).copy_(tensor.view(torch.uint8))
    else:
        copy.copy_(tensor)
    return copy


def clone_data(data):
    """Deep copy of a 4-tuple; every tensor keeps its shape, strides, dtype and device."""
    abc, sfasfb, sfasfb_reordered, problem_sizes = data
    return (
        [tuple(_clone_with_strides(t) for t in group) for group in abc],
        [tuple(_clone_with_strides(t) for t in group) for group in sfasfb],
        [tuple(_clone_with_strides(t) for t in group) for group in sfasfb_reordered],
        [tuple(sizes) for sizes in problem_sizes],
    )


def poison_outputs(data):
    """Fill every output c with NaN, so that an element the kernel never writes shows up as a failure."""
    for _, _, c in data[0]:
        c.fill_(float("nan"))
