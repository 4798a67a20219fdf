/* torch_bridge.h: the one place that looks inside torch tensors or talks to torch's profiler, behind a C
 * interface. */
#ifndef NVFP4_TORCH_BRIDGE_H
#define NVFP4_TORCH_BRIDGE_H

#include <Python.h>

#include "tensor_desc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nvfp4_read_status {
    NVFP4_READ_OK = 0,
    NVFP4_READ_NOT_A_TENSOR,     /* obj is no torch.Tensor */
    NVFP4_READ_UNSUPPORTED,      /* a tensor this package cannot describe; `message` says why */
} nvfp4_read_status;

/* 1 when obj is a torch.Tensor (or a subclass), else 0. */
int nvfp4_is_tensor(PyObject *obj);

/* Reads data pointer, dtype, device, sizes and strides of a torch.Tensor into out. Sets no Python
 * exception, allocates nothing, runs no Python code: the caller words the error with the field name. */
nvfp4_read_status nvfp4_read_tensor(PyObject *obj, nvfp4_tensor_desc *out, char *message, size_t message_size);

/* One group's five tensors (a, b, c, sfa, sfb) in one call, the common case: 1 when all five are
 * torch.Tensor itself (no subclass) and describable, with each *out[i] filled as nvfp4_read_tensor fills
 * it; 0 otherwise, and the caller reads them one by one, which words the error. Saves four of the five
 * bridge calls a group, and the register spills around them, on the hot path. */
#define NVFP4_GROUP_TENSORS 5
int nvfp4_read_group_tensors(PyObject *const *tensors, nvfp4_tensor_desc *const *out);

/* One call of an entry point, named for profilers: runs body(module, arg) inside a torch.profiler op called
 * `name` (an at::RecordFunction of the FUNCTION scope, so it lists with torch's own ops and owns the kernel
 * launches made inside it) and, in CUDA builds, an NVTX range of the same name for Nsight Systems. With no
 * profiler running the op is not made: torch reports no observer in a few thread-local reads, and an NVTX push
 * with no tool attached returns at once. Returns body's result. */
PyObject *nvfp4_profiled_call(const char *name, PyObject *(*body)(PyObject *, PyObject *), PyObject *module,
                              PyObject *arg);

/* The same for a body that returns 0 or -1: body(context), named `name`. */
int nvfp4_profiled_run(const char *name, int (*body)(void *), void *context);

/* A new uninitialised [rows, cols] CUDA tensor of bfloat16 (bf16) or float16 on `device`, from torch's caching
 * allocator (on the current stream); NULL with a Python exception set when torch cannot make it. */
PyObject *nvfp4_new_matrix(int64_t rows, int64_t cols, int bf16, int32_t device);

#ifdef __cplusplus
}
#endif

#endif
