"""The extension module itself: what it exports and how CUDA failures surface, on any machine."""

import pytest
import torch

import nvfp4_group_gemm
from nvfp4_group_gemm import _C


def test_exports():
    assert nvfp4_group_gemm.custom_kernel is _C.custom_kernel
    from nvfp4_group_gemm.submission import custom_kernel

    assert custom_kernel is _C.custom_kernel
    assert (_C.TILE_M, _C.TILE_N, _C.GROUP_ENTRY_BYTES) == (64, 128, 128)
    assert _C.INLINE_CAPACITY >= 8 and _C.RING_SLOTS >= 2


@pytest.mark.skipif(not _C.WITH_CUDA, reason="built without CUDA: no CUDA runtime to fail")
def test_cuda_failure_is_runtime_error_with_cuda_message():
    # Without a GPU the CUDA runtime's own error (no device / insufficient driver) must come through; with
    # one, asking for a device that does not exist must.
    index = torch.cuda.device_count() + 7 if torch.cuda.is_available() else 0
    with pytest.raises(RuntimeError) as info:
        _C.device_info(index)
    message = str(info.value)
    assert "CUDA error in" in message or f"no CUDA device {index}" in message, message


@pytest.mark.skipif(_C.WITH_CUDA, reason="built with CUDA: the no-CUDA build's message cannot appear")
def test_build_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="built without CUDA"):
        _C.device_info(0)
