/* tensor_desc.h: what the planner needs to know about one tensor, in plain C.
 *
 * The C++ bridge (torch_bridge.cpp) fills these from torch tensors; the planner (planner.c) and its
 * C unit tests build them by hand. Sizes and strides are in elements, as torch reports them, and are
 * not copied: they point into the tensor's own metadata, valid while the call runs (it runs no Python
 * code, so nothing can change them).
 */
#ifndef NVFP4_TENSOR_DESC_H
#define NVFP4_TENSOR_DESC_H

#include <stdint.h>

typedef enum nvfp4_dtype {
    NVFP4_DTYPE_OTHER = 0,
    NVFP4_DTYPE_FP4X2,        /* torch.float4_e2m1fn_x2: two e2m1 values per byte */
    NVFP4_DTYPE_UINT8,
    NVFP4_DTYPE_FLOAT16,
    NVFP4_DTYPE_FP8_E4M3FN,
    NVFP4_DTYPE_BFLOAT16,
    NVFP4_DTYPE_INT32,
    NVFP4_DTYPE_FLOAT32,
} nvfp4_dtype;

typedef enum nvfp4_device_type {
    NVFP4_DEVICE_OTHER = 0,
    NVFP4_DEVICE_CPU,
    NVFP4_DEVICE_CUDA,
} nvfp4_device_type;

typedef struct nvfp4_tensor_desc {
    uintptr_t data;              /* address of element [0, 0, ...] */
    nvfp4_dtype dtype;
    const char *dtype_name;      /* for messages, e.g. "torch.float32" */
    nvfp4_device_type device_type;
    const char *device_type_name;/* for messages, e.g. "cpu", "meta" */
    int32_t device_index;
    int32_t ndim;
    const int64_t *sizes;        /* ndim entries */
    const int64_t *strides;      /* ndim entries */
} nvfp4_tensor_desc;

#endif
