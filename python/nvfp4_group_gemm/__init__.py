"""NVFP4 block-scaled grouped GEMM with one native call.

    from nvfp4_group_gemm import custom_kernel, grouped_mm
    outputs = custom_kernel((abc, sfasfb, sfasfb_reordered, problem_sizes))   # the leaderboard's call
    out = grouped_mm(a, b, a_scale, b_scale, offsets, alpha=alpha)            # the MoE layout (moe.py)

Both are C functions of the extension module `nvfp4_group_gemm._C`: each validates the call and launches on
torch's current stream, all in C.
"""

import torch  # noqa: F401  (loads libtorch, which _C links against, and the dtypes _C reads)

from ._C import WITH_CUDA, custom_kernel, device_info
from .moe import grouped_mm

__all__ = ["custom_kernel", "grouped_mm", "device_info", "WITH_CUDA"]
