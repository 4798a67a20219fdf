"""NVFP4 block-scaled grouped GEMM with one native call.

    from nvfp4_group_gemm import custom_kernel
    outputs = custom_kernel((abc, sfasfb, sfasfb_reordered, problem_sizes))

`custom_kernel` is a C function of the extension module `nvfp4_group_gemm._C`: it validates the
call, builds the group table and launches one kernel on torch's current stream, all in C.
"""

import torch  # noqa: F401  (loads libtorch, which _C links against, and the dtypes _C reads)

from ._C import WITH_CUDA, custom_kernel, device_info

__all__ = ["custom_kernel", "device_info", "WITH_CUDA"]
