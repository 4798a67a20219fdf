"""Every validation rule of custom_kernel, reached with CPU tensors (csrc/module.c, csrc/planner.c).

The planner checks every field of every group first and the devices last, so on a machine without a GPU a fully
valid input stops at `abc[0].a: expected a CUDA tensor, got a tensor on cpu` and every other rule can be hit by
breaking exactly one thing in an otherwise valid input. Each case below does that and checks the exception type,
the field named at the start of the message, a hint of what was given, and that no output c was written.
"""

import dataclasses
import math
from typing import Callable

import pytest
import torch

from nvfp4_group_gemm import custom_kernel
from nvfp4_group_gemm.data import generate_input

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

FP4 = torch.float4_e2m1fn_x2
FP8 = torch.float8_e4m3fn
POISON = 7.0

# Three groups of different M, N and K. Group 1 has M = 129 (two 128-row scale blocks for sfa) and K = 64 (one
# 64-K block); group 2 has K = 256 (four 64-K blocks). Blocked scales:
#   group 0: sfa [32, 4, 1, 4, 2, L], sfb [32, 4, 1, 4, 2, L]
#   group 1: sfa [32, 4, 2, 4, 1, L], sfb [32, 4, 1, 4, 1, L]
#   group 2: sfa [32, 4, 1, 4, 4, L], sfb [32, 4, 1, 4, 4, L]
M = (64, 129, 40)
N = (96, 128, 72)
K = (128, 64, 256)

DEVICE_CPU = "abc[0].a: expected a CUDA tensor, got a tensor on cpu"
DEVICE_META = "abc[0].a: expected a CUDA tensor, got a tensor on meta"

# Where each tensor field lives: (index in data, index in the group's tuple).
TENSOR_FIELDS = {"a": (0, 0), "b": (0, 1), "c": (0, 2), "sfa": (2, 0), "sfb": (2, 1)}
SIZE_FIELDS = {"M": 0, "N": 1, "K": 2, "L": 3}
GROUP_ENTRIES = {"abc": 0, "sfasfb": 1, "sfasfb_reordered": 2, "problem_sizes": 3}


# ---- building inputs ----


def make_valid(l=1, m=M, n=N, k=K, seed=0):
    """A valid CPU 4-tuple of lists of tuples, every c filled with POISON."""
    abc, sfasfb, sfasfb_reordered, problem_sizes = generate_input(list(m), list(n), list(k), l, seed, device="cpu")
    for _, _, c in abc:
        c.fill_(POISON)
    return abc, sfasfb, sfasfb_reordered, problem_sizes


def replace(data, group, field, value):
    """A new 4-tuple with one thing of one group swapped.

    field: a tensor ("a", "b", "c", "sfa", "sfb"), a size ("M", "N", "K", "L"), or a whole group entry ("abc",
    "sfasfb", "sfasfb_reordered", "problem_sizes").
    """
    parts = [list(part) for part in data]
    if field in TENSOR_FIELDS:
        i, j = TENSOR_FIELDS[field]
        entry = list(parts[i][group])
        entry[j] = value
        parts[i][group] = tuple(entry)
    elif field in SIZE_FIELDS:
        entry = list(parts[3][group])
        entry[SIZE_FIELDS[field]] = value
        parts[3][group] = tuple(entry)
    elif field in GROUP_ENTRIES:
        parts[GROUP_ENTRIES[field]][group] = value
    else:
        raise KeyError(field)
    return tuple(parts)


def get(data, group, field):
    i, j = TENSOR_FIELDS[field]
    return data[i][group][j]


def zeros(shape, dtype):
    """Zeros of any dtype (fp4/fp8 have no fill kernels: go through bytes)."""
    if dtype in (FP4, FP8, torch.float8_e5m2):
        return torch.zeros(shape, dtype=torch.uint8).view(dtype)
    tensor = torch.zeros(shape, dtype=dtype)
    if dtype.is_floating_point:
        tensor.fill_(POISON)
    return tensor


def operand(rows, k, l, dtype=FP4):
    """a or b in the leaderboard layout: [rows, K/2, L] view of a contiguous [L, rows, K/2] buffer."""
    return zeros((l, rows, k // 2), dtype).permute(1, 2, 0)


def output(m, n, l, dtype=torch.float16):
    """c in the leaderboard layout: [M, N, L] view of a contiguous [L, M, N] buffer, filled with POISON."""
    return zeros((l, m, n), dtype).permute(1, 2, 0)


def blocked(rest_mn, rest_k, l, dtype=FP8):
    """Blocked scales [32, 4, rest_mn, 4, rest_k, L] over a contiguous (L, rest_mn, rest_k, 32, 4, 4) buffer."""
    return zeros((l, rest_mn, rest_k, 32, 4, 4), dtype).permute(3, 4, 1, 5, 2, 0)


def scales(rows, k, l, dtype=FP8):
    return blocked(math.ceil(rows / 128), math.ceil(k / 64), l, dtype)


def field_tensor(data, group, field, dtype=None):
    """A fresh valid-layout tensor for one field of one group (dtype overridable)."""
    m, n, k, l = data[3][group]
    if field in ("a", "b"):
        return operand(m if field == "a" else n, k, l, dtype or FP4)
    if field == "c":
        return output(m, n, l, dtype or torch.float16)
    return scales(m if field == "sfa" else n, k, l, dtype or FP8)


def misaligned(shape, dtype, offset, permutation):
    """permute(contiguous tensor of `shape`) whose data pointer is exactly `offset` bytes past a 16-byte boundary."""
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    buffer = torch.zeros(size + 64, dtype=torch.uint8)
    start = (-buffer.data_ptr()) % 16 + offset
    tensor = buffer[start : start + size].view(dtype).view(shape).permute(*permutation)
    assert tensor.data_ptr() % 16 == offset
    if dtype.is_floating_point and tensor.element_size() > 1:
        tensor.fill_(POISON)
    return tensor


def to_meta(data):
    abc, sfasfb, sfasfb_reordered, problem_sizes = data
    move = lambda groups: [tuple(t.to("meta") for t in group) for group in groups]  # noqa: E731
    return move(abc), move(sfasfb), move(sfasfb_reordered), list(problem_sizes)


# ---- the matrix ----


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    build: Callable  # valid data -> data with one thing broken
    exc: type
    prefix: str  # the message starts with this (the field)
    hints: tuple = ()  # substrings the message must contain
    l: int = 1
    exact: str = None  # the whole message, when it is known exactly


def case(id, build, exc, prefix, *hints, l=1):
    return Case(id, build, exc, prefix, tuple(hints), l)


def accepted(id, build, l=1):
    """Structurally valid: the call gets to the device check and stops there."""
    return Case(id, build, ValueError, "abc[0].a:", (), l, DEVICE_CPU)


def sizes_of(g, l=1, **changes):
    values = dict(zip("MNKL", (M[g], N[g], K[g], l)))
    values.update(changes)
    return tuple(values[key] for key in "MNKL")


CONTAINER_CASES = [
    case("data_none", lambda d: None, TypeError, "data:", "NoneType", "4-tuple"),
    case("data_dict", lambda d: {"abc": d[0]}, TypeError, "data:", "got dict"),
    case("data_tensor", lambda d: torch.zeros(4), TypeError, "data:", "got Tensor"),
    case("data_len3", lambda d: tuple(d[:3]), TypeError, "data:", "tuple of length 3"),
    case("data_len5", lambda d: tuple(d) + (None,), TypeError, "data:", "tuple of length 5"),
    case("data_list_len2", lambda d: list(d[:2]), TypeError, "data:", "list of length 2"),
    accepted("data_as_list", lambda d: list(d)),
    accepted("inner_as_tuples", lambda d: tuple(tuple(part) for part in d)),
    case("abc_dict", lambda d: ({0: d[0][0]},) + d[1:], TypeError, "data[0] (abc):", "list or tuple", "got dict"),
    case("sfasfb_dict", lambda d: (d[0], dict(enumerate(d[1])), d[2], d[3]), TypeError, "data[1] (sfasfb):", "dict"),
    case("sfasfb_reordered_tensor", lambda d: (d[0], d[1], torch.zeros(3), d[3]), TypeError,
         "data[2] (sfasfb_reordered):", "got Tensor"),
    case("problem_sizes_tensor", lambda d: d[:3] + (torch.tensor(d[3]),), TypeError, "data[3] (problem_sizes):",
         "got Tensor"),
    case("problem_sizes_none", lambda d: d[:3] + (None,), TypeError, "data[3] (problem_sizes):", "NoneType"),
    case("sfasfb_short", lambda d: (d[0], d[1][:2], d[2], d[3]), ValueError, "data[1] (sfasfb):",
         "expected 3 entries", "got 2"),
    case("sfasfb_reordered_long", lambda d: (d[0], d[1], d[2] + d[2][:1], d[3]), ValueError,
         "data[2] (sfasfb_reordered):", "expected 3 entries", "got 4"),
    case("problem_sizes_short", lambda d: d[:3] + (d[3][:1],), ValueError, "data[3] (problem_sizes):",
         "expected 3 entries", "got 1"),
    case("abc_empty_others_not", lambda d: ([],) + d[1:], ValueError, "data[1] (sfasfb):", "expected 0 entries",
         "got 3"),
    case("zero_groups", lambda d: ([], [], [], []), ValueError, "data[0] (abc):", "at least one group", "got none"),
    case("zero_groups_tuples", lambda d: ((), (), (), ()), ValueError, "data[0] (abc):", "got none"),
]

GROUP_CASES = [
    case("abc_2tuple", lambda d: replace(d, 1, "abc", d[0][1][:2]), TypeError, "abc[1]:", "(a, b, c)",
         "tuple of length 2"),
    case("abc_4list", lambda d: replace(d, 2, "abc", list(d[0][2]) + [None]), TypeError, "abc[2]:", "list of length 4"),
    case("abc_none", lambda d: replace(d, 2, "abc", None), TypeError, "abc[2]:", "got NoneType"),
    case("abc_tensor", lambda d: replace(d, 1, "abc", d[0][1][0]), TypeError, "abc[1]:", "got Tensor"),
    accepted("abc_as_list", lambda d: replace(d, 1, "abc", list(d[0][1]))),
    case("sfr_3tuple", lambda d: replace(d, 2, "sfasfb_reordered", d[2][2] + (d[2][2][0],)), TypeError,
         "sfasfb_reordered[2]:", "(sfa, sfb)", "tuple of length 3"),
    case("sfr_1tuple", lambda d: replace(d, 1, "sfasfb_reordered", d[2][1][:1]), TypeError, "sfasfb_reordered[1]:",
         "tuple of length 1"),
    case("sfr_tensor", lambda d: replace(d, 1, "sfasfb_reordered", d[2][1][0]), TypeError, "sfasfb_reordered[1]:",
         "got Tensor"),
    case("sizes_3tuple", lambda d: replace(d, 2, "problem_sizes", d[3][2][:3]), TypeError, "problem_sizes[2]:",
         "4 ints", "tuple of length 3"),
    case("sizes_5list", lambda d: replace(d, 1, "problem_sizes", list(d[3][1]) + [1]), TypeError, "problem_sizes[1]:",
         "list of length 5"),
    case("sizes_str", lambda d: replace(d, 2, "problem_sizes", "4072"), TypeError, "problem_sizes[2]:", "got str"),
    case("sizes_int", lambda d: replace(d, 1, "problem_sizes", 129), TypeError, "problem_sizes[1]:", "got int"),
    case("sizes_none", lambda d: replace(d, 0, "problem_sizes", None), TypeError, "problem_sizes[0]:", "NoneType"),
    accepted("sizes_as_list", lambda d: replace(d, 2, "problem_sizes", list(d[3][2]))),
    accepted("sizes_as_torch_size", lambda d: replace(d, 2, "problem_sizes", torch.Size(d[3][2]))),
    # sfasfb (the plain CPU scales) is not read by the kernel: only its length is checked.
    accepted("sfasfb_entry_not_read", lambda d: replace(d, 1, "sfasfb", None)),
]

SIZE_CASES = [
    case("K_float", lambda d: replace(d, 1, "K", 64.0), TypeError, "problem_sizes[1][2]:", "expected an int",
         "got float"),
    case("N_none", lambda d: replace(d, 2, "N", None), TypeError, "problem_sizes[2][1]:", "got NoneType"),
    case("M_str", lambda d: replace(d, 1, "M", "129"), TypeError, "problem_sizes[1][0]:", "got str"),
    case("L_bool", lambda d: replace(d, 1, "L", True), TypeError, "problem_sizes[1][3]:", "got bool"),
    case("M_bool_false", lambda d: replace(d, 2, "M", False), TypeError, "problem_sizes[2][0]:", "got bool"),
    case("K_tensor", lambda d: replace(d, 2, "K", torch.tensor(256)), TypeError, "problem_sizes[2][2]:", "got a torch.Tensor"),
    case("M_negative", lambda d: replace(d, 2, "M", -1), ValueError, "problem_sizes[2]:", "M >= 0",
         "got (-1, 72, 256, 1)"),
    case("N_zero", lambda d: replace(d, 1, "N", 0), ValueError, "problem_sizes[1]:", "N >= 1", "got (129, 0, 64, 1)"),
    case("K_zero", lambda d: replace(d, 2, "K", 0), ValueError, "problem_sizes[2]:", "K >= 1", "got (40, 72, 0, 1)"),
    case("L_zero", lambda d: replace(d, 1, "L", 0), ValueError, "problem_sizes[1]:", "L >= 1", "got (129, 128, 64, 0)"),
    case("K_negative", lambda d: replace(d, 1, "K", -64), ValueError, "problem_sizes[1]:", "(129, 128, -64, 1)"),
    case("M_2pow31", lambda d: replace(d, 1, "M", 2**31), ValueError, "problem_sizes[1]:", "below 2^31",
         "(2147483648, 128, 64, 1)"),
    case("L_2pow40", lambda d: replace(d, 2, "L", 2**40), ValueError, "problem_sizes[2]:", "below 2^31",
         str(2**40)),
    case("N_2pow63", lambda d: replace(d, 2, "N", 2**63), ValueError, "problem_sizes[2][1]:", "fits 64 bits",
         str(2**63)),
    case("M_minus_2pow70", lambda d: replace(d, 1, "M", -(2**70)), ValueError, "problem_sizes[1][0]:", str(-(2**70))),
    # K = 96 with tensors made for K = 96: only the multiple-of-64 rule is broken.
    case("K_96",
         lambda d: replace(replace(replace(replace(replace(replace(d, 1, "K", 96), 1, "a", operand(129, 96, 1)),
                                                   1, "b", operand(128, 96, 1)), 1, "sfa", scales(129, 96, 1)),
                                   1, "sfb", scales(128, 96, 1)), 1, "sfasfb", None),
         ValueError, "problem_sizes[1]:", "multiple of 64", "K = 96"),
    case("K_160_L2", lambda d: replace(d, 2, "K", 160), ValueError, "problem_sizes[2]:", "K = 160", l=2),
    # Sizes that disagree with the tensors: the first tensor whose shape depends on the size names itself.
    case("M_bigger", lambda d: replace(d, 1, "M", 130), ValueError, "abc[1].a:", "[M, K/2, L] = [130, 32, 1]",
         "got [129, 32, 1]"),
    case("M_smaller", lambda d: replace(d, 2, "M", 39), ValueError, "abc[2].a:", "= [39, 128, 1]", "got [40, 128, 1]"),
    case("N_bigger", lambda d: replace(d, 2, "N", 80), ValueError, "abc[2].b:", "[N, K/2, L] = [80, 128, 1]",
         "got [72, 128, 1]"),
    case("K_bigger", lambda d: replace(d, 1, "K", 128), ValueError, "abc[1].a:", "= [129, 64, 1]", "got [129, 32, 1]"),
    case("K_smaller", lambda d: replace(d, 2, "K", 192), ValueError, "abc[2].a:", "= [40, 96, 1]",
         "got [40, 128, 1]"),
    case("L_bigger", lambda d: replace(d, 1, "L", 2), ValueError, "abc[1].a:", "= [129, 32, 2]", "got [129, 32, 1]"),
    case("L_smaller", lambda d: replace(d, 2, "L", 1), ValueError, "abc[2].a:", "= [40, 128, 1]", "got [40, 128, 2]",
         l=2),
]


def non_tensor_cases():
    values = [("none", None, "NoneType"), ("list", [[0]], "got list"), ("int", 3, "got int")]
    if np is not None:
        values.append(("numpy", "numpy", "numpy.ndarray"))
    cases = []
    targets = [("a", 1, "abc[1].a:"), ("b", 2, "abc[2].b:"), ("c", 1, "abc[1].c:"),
               ("sfa", 2, "sfasfb_reordered[2].sfa:"), ("sfb", 1, "sfasfb_reordered[1].sfb:")]
    for field, group, prefix in targets:
        for name, value, hint in values:

            def build(d, field=field, group=group, value=value):
                if value == "numpy":
                    value = np.zeros(tuple(get(d, group, field).shape), dtype=np.uint8)
                return replace(d, group, field, value)

            cases.append(case(f"{field}_{name}", build, TypeError, prefix, "expected a torch.Tensor", hint))
    return cases


def dtype_case(id, field, group, dtype, prefix, expected, given, l=1):
    return case(id, lambda d: replace(d, group, field, field_tensor(d, group, field, dtype)), TypeError, prefix,
                f"expected dtype {expected}", f"got {given}", l=l)


FP4_NAME = "torch.float4_e2m1fn_x2"
DTYPE_CASES = [
    dtype_case("a_float16", "a", 1, torch.float16, "abc[1].a:", FP4_NAME, "torch.float16"),
    dtype_case("a_int8", "a", 2, torch.int8, "abc[2].a:", FP4_NAME, "torch.int8"),
    dtype_case("a_float8", "a", 0, FP8, "abc[0].a:", FP4_NAME, "torch.float8_e4m3fn"),
    dtype_case("b_float32", "b", 2, torch.float32, "abc[2].b:", FP4_NAME, "torch.float32"),
    dtype_case("b_bool", "b", 1, torch.bool, "abc[1].b:", FP4_NAME, "torch.bool"),
    dtype_case("c_float32", "c", 1, torch.float32, "abc[1].c:", "torch.float16", "torch.float32"),
    dtype_case("c_bfloat16", "c", 2, torch.bfloat16, "abc[2].c:", "torch.float16", "torch.bfloat16"),
    dtype_case("c_complex64", "c", 2, torch.complex64, "abc[2].c:", "torch.float16", "torch.complex64"),
    dtype_case("sfa_uint8", "sfa", 1, torch.uint8, "sfasfb_reordered[1].sfa:", "torch.float8_e4m3fn", "torch.uint8"),
    dtype_case("sfa_e5m2", "sfa", 2, torch.float8_e5m2, "sfasfb_reordered[2].sfa:", "torch.float8_e4m3fn",
               "torch.float8_e5m2"),
    dtype_case("sfb_float16", "sfb", 2, torch.float16, "sfasfb_reordered[2].sfb:", "torch.float8_e4m3fn",
               "torch.float16"),
    dtype_case("sfb_fp4", "sfb", 1, FP4, "sfasfb_reordered[1].sfb:", "torch.float8_e4m3fn", FP4_NAME, l=2),
    # a and b as plain byte views of the same memory are accepted.
    accepted("a_uint8_view", lambda d: replace(d, 1, "a", get(d, 1, "a").view(torch.uint8))),
    accepted("b_uint8_view", lambda d: replace(d, 2, "b", get(d, 2, "b").view(torch.uint8))),
    accepted("a_b_uint8_views_all_groups",
             lambda d: tuple([[(a.view(torch.uint8), b.view(torch.uint8), c) for a, b, c in d[0]]] + list(d[1:])),
             l=2),
]


def overlapping_rows_c(m, n, l):
    """c whose row stride (n - 1) is smaller than a row: rows share their last/first element."""
    buffer = torch.full((m * n * l + 64,), POISON, dtype=torch.float16)
    return buffer.as_strided((m, n, l), (n - 1, 1, m * n))


def padded_rows(shape_lrk, narrow_to, dtype):
    """[rows, narrow_to, L] view of a [L, rows, wider] buffer (row stride = the wider width)."""
    return zeros(shape_lrk, dtype)[..., :narrow_to].permute(1, 2, 0)


def padded_atoms(rest_mn, rest_k, l, pad):
    """Blocked scales whose atoms are `pad` bytes apart from one another beyond their 512 bytes (k-block stride)."""
    atoms = zeros((l, rest_mn, rest_k, 512 + pad), FP8)[..., :512].view(l, rest_mn, rest_k, 32, 4, 4)
    return atoms.permute(3, 4, 1, 5, 2, 0)


def padded_rowblocks(rest_mn, rest_k, l, pad):
    """Blocked scales whose 128-row blocks are rest_k * 512 + pad bytes apart."""
    blocks = zeros((l, rest_mn, rest_k * 512 + pad), FP8)[..., : rest_k * 512].view(l, rest_mn, rest_k, 32, 4, 4)
    return blocks.permute(3, 4, 1, 5, 2, 0)


SHAPE_CASES = [
    case("a_2d", lambda d: replace(d, 1, "a", get(d, 1, "a")[:, :, 0]), ValueError, "abc[1].a:",
         "[M, K/2, L] = [129, 32, 1]", "got [129, 32]"),
    case("a_4d", lambda d: replace(d, 2, "a", get(d, 2, "a").unsqueeze(0)), ValueError, "abc[2].a:",
         "got [1, 40, 128, 1]"),
    case("a_wide", lambda d: replace(d, 1, "a", operand(129, 128, 1)), ValueError, "abc[1].a:", "got [129, 64, 1]"),
    case("b_short", lambda d: replace(d, 2, "b", operand(64, 256, 1)), ValueError, "abc[2].b:",
         "[N, K/2, L] = [72, 128, 1]", "got [64, 128, 1]"),
    case("b_L2_for_L1", lambda d: replace(d, 1, "b", operand(128, 64, 2)), ValueError, "abc[1].b:",
         "got [128, 32, 2]"),
    case("c_2d", lambda d: replace(d, 2, "c", get(d, 2, "c")[:, :, 0]), ValueError, "abc[2].c:",
         "[M, N, L] = [40, 72, 1]", "got [40, 72]"),
    case("c_transposed", lambda d: replace(d, 1, "c", output(128, 129, 1)), ValueError, "abc[1].c:",
         "= [129, 128, 1]", "got [128, 129, 1]"),
    case("c_L1_for_L2", lambda d: replace(d, 2, "c", output(40, 72, 1)), ValueError, "abc[2].c:", "got [40, 72, 1]",
         l=2),
    case("sfa_5d", lambda d: replace(d, 1, "sfa", get(d, 1, "sfa")[..., 0]), ValueError, "sfasfb_reordered[1].sfa:",
         "at least [32, 4, 2, 4, 1, 1]", "got [32, 4, 2, 4, 1]"),
    case("sfa_plain_layout", lambda d: replace(d, 2, "sfa", d[1][2][0]), ValueError, "sfasfb_reordered[2].sfa:",
         "got [40, 16, 1]"),
    case("sfb_16_rows_atom", lambda d: replace(d, 2, "sfb", zeros((1, 1, 4, 16, 8, 4), FP8).permute(3, 4, 1, 5, 2, 0)),
         ValueError, "sfasfb_reordered[2].sfb:", "[32, 4, >= ceil(rows/128), 4, >= K/64, >= L]",
         "got [16, 8, 1, 4, 4, 1]"),
    case("sfa_rest_mn_too_small", lambda d: replace(d, 1, "sfa", scales(128, 64, 1)), ValueError,
         "sfasfb_reordered[1].sfa:", "at least [32, 4, 2, 4, 1, 1] for 129 rows and K = 64", "got [32, 4, 1, 4, 1, 1]"),
    case("sfb_rest_k_too_small", lambda d: replace(d, 2, "sfb", scales(72, 192, 1)), ValueError,
         "sfasfb_reordered[2].sfb:", "at least [32, 4, 1, 4, 4, 1] for 72 rows and K = 256", "got [32, 4, 1, 4, 3, 1]"),
    case("sfa_L_too_small", lambda d: replace(d, 2, "sfa", scales(40, 256, 1)), ValueError,
         "sfasfb_reordered[2].sfa:", "at least [32, 4, 1, 4, 4, 2]", "got [32, 4, 1, 4, 4, 1]", l=2),
    accepted("sfa_extra_row_blocks", lambda d: replace(d, 1, "sfa", scales(300, 64, 1))),
    accepted("sfb_extra_k_blocks", lambda d: replace(d, 2, "sfb", scales(72, 512, 1))),
    accepted("sfa_extra_L", lambda d: replace(d, 0, "sfa", scales(64, 128, 3)), l=2),
    case("a_9d", lambda d: replace(d, 1, "a", get(d, 1, "a").reshape(129, 32, 1, 1, 1, 1, 1, 1, 1)), ValueError,
         "abc[1].a:", "expected shape [M, K/2, L] = [129, 32, 1]", "got [129, 32, 1, 1, 1, 1, 1, 1, 1]"),
]

STRIDE_CASES = [
    # a stored [L, K/2, M] and viewed back as [M, K/2, L]: dimension 1 has stride M.
    case("a_not_k_contiguous", lambda d: replace(d, 1, "a", zeros((1, 32, 129), FP4).permute(2, 1, 0)), ValueError,
         "abc[1].a:", "K-contiguous", "got strides [1, 129, 4128]"),
    case("b_not_k_contiguous", lambda d: replace(d, 2, "b", zeros((2, 128, 72), torch.uint8).permute(2, 1, 0)),
         ValueError, "abc[2].b:", "K-contiguous", "got strides [1, 72, 9216]", l=2),
    case("a_row_stride_not_16B", lambda d: replace(d, 1, "a", padded_rows((1, 129, 40), 32, FP4)), ValueError,
         "abc[1].a:", "dimension 0 (rows)", "multiple of 16 bytes, got 40 bytes", "strides [40, 1, 5160]"),
    case("b_row_stride_not_16B", lambda d: replace(d, 2, "b", padded_rows((1, 72, 136), 128, FP4)), ValueError,
         "abc[2].b:", "dimension 0 (rows)", "got 136 bytes"),
    accepted("b_row_stride_padded_16B", lambda d: replace(d, 2, "b", padded_rows((1, 72, 144), 128, FP4))),
    case("a_L_stride_not_16B",
         lambda d: replace(d, 2, "a", zeros((2, 40 * 128 + 8), FP4)[:, : 40 * 128].view(2, 40, 128).permute(1, 2, 0)),
         ValueError, "abc[2].a:", "dimension 2 (L)", "got 5128 bytes", l=2),
    case("a_row_stride_over_int32",
         lambda d: replace(d, 1, "a", torch.empty_strided((129, 32, 1), (2**32, 1, 2**40), dtype=FP4, device="meta")),
         ValueError, "abc[1].a:", "dimension 0 (rows)", "[0, 2147483647] bytes", "got 4294967296"),
    case("c_not_n_contiguous", lambda d: replace(d, 1, "c", zeros((1, 128, 129), torch.float16).permute(2, 1, 0)),
         ValueError, "abc[1].c:", "N-contiguous", "got strides [1, 129, 16512]"),
    case("c_expanded_rows", lambda d: replace(d, 2, "c", output(1, 72, 1).expand(40, 72, 1)), ValueError, "abc[2].c:",
         "do not overlap", "got strides [0, 1, 72] for shape [40, 72, 1]"),
    case("c_overlapping_rows", lambda d: replace(d, 1, "c", overlapping_rows_c(129, 128, 1)), ValueError, "abc[1].c:",
         "do not overlap", "strides [127, 1, 16512]"),
    case("c_expanded_batch", lambda d: replace(d, 2, "c", output(40, 72, 1).expand(40, 72, 2)), ValueError,
         "abc[2].c:", "do not overlap", "strides [72, 1, 0]", l=2),
    case("c_row_stride_over_limit",
         lambda d: replace(d, 1, "c",
                           torch.empty_strided((129, 128, 1), (2**30, 1, 2**40), dtype=torch.float16, device="meta")),
         ValueError, "abc[1].c:", "row stride of at most 1073741823 elements", "got 1073741824"),
    accepted("c_padded_rows", lambda d: replace(d, 2, "c", padded_rows((1, 40, 75), 72, torch.float16))),
    accepted("c_batch_inner", lambda d: replace(d, 1, "c", zeros((129, 2, 128), torch.float16).permute(0, 2, 1)),
             l=2),
    # A contiguous [32, 4, rest_mn, 4, rest_k, L] tensor: right shape, wrong memory order.
    case("sfa_contiguous_view_shape", lambda d: replace(d, 1, "sfa", zeros((32, 4, 2, 4, 1, 1), FP8)), ValueError,
         "sfasfb_reordered[1].sfa:", "contiguous 512-byte scale atoms", "got strides [32, 8, 4, 1, 1, 1]"),
    case("sfb_atoms_transposed",
         lambda d: replace(d, 2, "sfb", zeros((1, 1, 4, 4, 32, 4), FP8).permute(4, 3, 1, 5, 2, 0)), ValueError,
         "sfasfb_reordered[2].sfb:", "contiguous 512-byte scale atoms", "got strides [4, 128, 2048, 1, 512, 2048]"),
    case("sfb_k_block_stride_not_16B", lambda d: replace(d, 2, "sfb", padded_atoms(1, 4, 1, 8)), ValueError,
         "sfasfb_reordered[2].sfb:", "dimension 4 (64-K blocks)", "got 520 bytes"),
    case("sfa_row_block_stride_not_16B", lambda d: replace(d, 1, "sfa", padded_rowblocks(2, 1, 1, 4)), ValueError,
         "sfasfb_reordered[1].sfa:", "dimension 2 (128-row blocks)", "got 516 bytes"),
    case("sfa_L_stride_not_16B",
         lambda d: replace(d, 2, "sfa", zeros((2, 4 * 512 + 8), FP8)[:, : 4 * 512].view(2, 1, 4, 32, 4, 4)
                           .permute(3, 4, 1, 5, 2, 0)),
         ValueError, "sfasfb_reordered[2].sfa:", "dimension 5 (L)", "got 2056 bytes", l=2),
    accepted("sfb_padded_atoms_16B", lambda d: replace(d, 2, "sfb", padded_atoms(1, 4, 1, 16))),
]

ALIGNMENT_CASES = [
    case("a_misaligned_8", lambda d: replace(d, 1, "a", misaligned((1, 129, 32), FP4, 8, (1, 2, 0))), ValueError,
         "abc[1].a:", "aligned to 16 bytes", "got 0x"),
    case("b_misaligned_1", lambda d: replace(d, 2, "b", misaligned((1, 72, 128), torch.uint8, 1, (1, 2, 0))),
         ValueError, "abc[2].b:", "aligned to 16 bytes", "got 0x"),
    case("c_misaligned_8", lambda d: replace(d, 2, "c", misaligned((1, 40, 72), torch.float16, 8, (1, 2, 0))),
         ValueError, "abc[2].c:", "aligned to 16 bytes", "got 0x"),
    case("c_misaligned_2_L2", lambda d: replace(d, 1, "c", misaligned((2, 129, 128), torch.float16, 2, (1, 2, 0))),
         ValueError, "abc[1].c:", "aligned to 16 bytes", l=2),
    case("sfa_misaligned_8",
         lambda d: replace(d, 1, "sfa", misaligned((1, 2, 1, 32, 4, 4), FP8, 8, (3, 4, 1, 5, 2, 0))), ValueError,
         "sfasfb_reordered[1].sfa:", "aligned to 16 bytes", "got 0x"),
    case("sfb_misaligned_4",
         lambda d: replace(d, 2, "sfb", misaligned((1, 1, 4, 32, 4, 4), FP8, 4, (3, 4, 1, 5, 2, 0))), ValueError,
         "sfasfb_reordered[2].sfb:", "aligned to 16 bytes", "got 0x"),
]

DEVICE_CASES = [
    accepted("valid_cpu", lambda d: d),
    accepted("valid_cpu_L2", lambda d: d, l=2),
    Case("a0_on_meta", lambda d: replace(d, 0, "a", get(d, 0, "a").to("meta")), ValueError, "abc[0].a:", (), 1,
         DEVICE_META),
    Case("all_on_meta", to_meta, ValueError, "abc[0].a:", (), 1, DEVICE_META),
    # Meta tensors pass every structural rule; the first CPU tensor then fails the device check.
    accepted("b2_on_meta", lambda d: replace(d, 2, "b", get(d, 2, "b").to("meta"))),
    accepted("sfb1_on_meta", lambda d: replace(d, 1, "sfb", get(d, 1, "sfb").to("meta"))),
]

UNSUPPORTED_CASES = [
    case("a_sparse", lambda d: replace(d, 1, "a", torch.zeros(129, 32, 1, dtype=torch.uint8).to_sparse()),
         ValueError, "abc[1].a:", "strided (dense)", "sparse"),
    case("c_sparse", lambda d: replace(d, 2, "c", torch.zeros(40, 72, 1, dtype=torch.float16).to_sparse()),
         ValueError, "abc[2].c:", "strided (dense)"),
    case("sfb_sparse_csr", lambda d: replace(d, 1, "sfb", torch.zeros(128, 4).to_sparse_csr()), ValueError,
         "sfasfb_reordered[1].sfb:", "strided (dense)"),
]

CASES = (CONTAINER_CASES + GROUP_CASES + SIZE_CASES + non_tensor_cases() + DTYPE_CASES + SHAPE_CASES + STRIDE_CASES
         + ALIGNMENT_CASES + DEVICE_CASES + UNSUPPORTED_CASES)


def snapshot_outputs(data):
    """(c, copy) for every readable c of a 4-tuple-shaped input (anything else is skipped)."""
    pairs = []
    try:
        groups = list(data[0])
    except Exception:
        return pairs
    for group in groups:
        if not isinstance(group, (list, tuple)) or len(group) != 3:
            continue
        c = group[2]
        if isinstance(c, torch.Tensor) and c.layout == torch.strided and c.device.type == "cpu":
            if c.element_size() == 1:
                c = c.view(torch.uint8)  # fp4/fp8 have no comparison kernels
            pairs.append((c, c.clone()))
    return pairs


def check_rejected(data, exc, prefix, hints=(), exact=None, originals=()):
    """Calls custom_kernel(data), expecting exactly `exc` with a message as described; no c may change."""
    saved = snapshot_outputs(data)
    with pytest.raises(Exception) as info:
        custom_kernel(data)
    message = str(info.value)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {message}"
    assert message.startswith(prefix), message
    for hint in hints:
        assert hint in message, f"{hint!r} not in {message!r}"
    if exact is not None:
        assert message == exact
    for c, copy in saved:
        assert torch.equal(c, copy), "a rejected call wrote into c"
    for c in originals:
        assert bool((c == POISON).all()), "a rejected call wrote into c"
    return message


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validation(case):
    data = make_valid(l=case.l)
    originals = [c for _, _, c in data[0]]
    broken = case.build(data)
    check_rejected(broken, case.exc, case.prefix, case.hints, case.exact, originals)


# ---- empty groups ----


@pytest.mark.parametrize("l", [1, 2])
@pytest.mark.parametrize("m", [(0, 129, 40), (64, 0, 40), (64, 129, 0)], ids=["g0", "g1", "g2"])
def test_empty_group_passes_validation(m, l):
    data = make_valid(l=l, m=m)
    check_rejected(data, ValueError, "abc[0].a:", exact=DEVICE_CPU, originals=[c for _, _, c in data[0]])


def test_all_groups_empty_still_need_cuda():
    data = make_valid(m=(0, 0, 0))
    check_rejected(data, ValueError, "abc[0].a:", exact=DEVICE_CPU)


def test_all_groups_empty_on_meta():
    check_rejected(to_meta(make_valid(m=(0, 0, 0), l=2)), ValueError, "abc[0].a:", exact=DEVICE_META)


def test_empty_group_is_still_validated():
    data = make_valid(m=(64, 0, 40))
    data = replace(data, 1, "c", output(0, 128, 1, torch.float32))
    check_rejected(data, TypeError, "abc[1].c:", ("torch.float32",))


def test_empty_group_checks_its_scales():
    data = make_valid(m=(64, 129, 0))
    data = replace(data, 2, "sfb", scales(72, 64, 1))
    check_rejected(data, ValueError, "sfasfb_reordered[2].sfb:", ("got [32, 4, 1, 4, 1, 1]",))


# ---- ordering and state ----


def test_first_broken_group_is_reported():
    """Groups are validated in order: of two broken groups the lower index is named."""
    data = make_valid()
    data = replace(data, 2, "a", operand(40, 256, 1, torch.float16))
    data = replace(data, 1, "c", output(129, 128, 1, torch.float32))
    check_rejected(data, TypeError, "abc[1].c:", ("torch.float32",))


def test_groups_are_checked_in_order():
    """Groups stream through reading and planning: the first broken group is reported, whatever the kind of error."""
    data = make_valid()
    data = replace(data, 0, "a", operand(64, 128, 1, torch.float16))  # planner rule, group 0
    data = replace(data, 2, "K", 256.0)  # Python type, group 2
    check_rejected(data, TypeError, "abc[0].a:", ("torch.float16",))
    data = make_valid()
    data = replace(data, 0, "K", 256.0)  # Python type, group 0
    data = replace(data, 1, "a", operand(64, 128, 1, torch.float16))  # planner rule, group 1
    check_rejected(data, TypeError, "problem_sizes[0][2]:", ("float",))


def test_sizes_are_checked_before_tensors_of_the_same_group():
    data = make_valid()
    data = replace(data, 1, "a", operand(129, 64, 1, torch.float16))
    data = replace(data, 1, "N", 0)
    check_rejected(data, ValueError, "problem_sizes[1]:", ("(129, 0, 64, 1)",))


def test_many_groups_index_in_message_and_state_survives():
    """40 groups grow the module's buffers past their first capacity; a rejected call leaves the module usable."""
    groups = 40
    data = make_valid(m=[16 + 8 * (g % 5) for g in range(groups)], n=[64] * groups, k=[64] * groups, seed=1)
    broken = replace(data, 37, "sfb", scales(64, 64, 1, torch.uint8))
    check_rejected(broken, TypeError, "sfasfb_reordered[37].sfb:", ("torch.uint8",))
    check_rejected(data, ValueError, "abc[0].a:", exact=DEVICE_CPU)
    small = make_valid()
    check_rejected(small, ValueError, "abc[0].a:", exact=DEVICE_CPU)
    check_rejected(replace(small, 2, "b", None), TypeError, "abc[2].b:", ("NoneType",))


class MarkedTensor(torch.Tensor):
    """A torch.Tensor subclass: its groups are read tensor by tensor, plain groups in one call."""


@pytest.mark.parametrize("field", list(TENSOR_FIELDS))
def test_subclass_tensors_follow_the_same_rules(field):
    """A valid subclass tensor passes like a plain one; a broken one is named like a plain one."""
    data = make_valid()
    marked = replace(data, 1, field, get(data, 1, field).as_subclass(MarkedTensor))
    check_rejected(marked, ValueError, "abc[0].a:", exact=DEVICE_CPU, originals=[c for _, _, c in data[0]])
    container = "abc" if field in ("a", "b", "c") else "sfasfb_reordered"
    broken = field_tensor(data, 1, field, torch.float32).as_subclass(MarkedTensor)
    check_rejected(replace(data, 1, field, broken), TypeError, f"{container}[1].{field}:", ("torch.float32",))


def test_numpy_integer_sizes_are_accepted():
    np = pytest.importorskip("numpy")
    data = make_valid()
    sizes = [tuple(np.int64(v) for v in s) for s in data[3]]
    check_rejected((data[0], data[1], data[2], sizes), ValueError, "abc[0].a:", exact=DEVICE_CPU)


def test_size_whose_index_raises_is_a_type_error_naming_the_field():
    # Found by tests/test_fuzz.py: the OverflowError of a size's __index__ came out as it was.
    class BadIndex:
        def __index__(self):
            raise OverflowError("no index")

    data = make_valid()
    message = check_rejected(replace(data, 2, "K", BadIndex()), TypeError, "problem_sizes[2][2]:",
                             ("BadIndex", "OverflowError"))
    assert "no index" in message
