/* portable_gemm.h: C interface of the portable kernel (portable_gemm.cu), for csrc/device.c.
 * Free of CUDA types so that a build without CUDA can still plan with the kernel's tile. */
#ifndef NVFP4_PORTABLE_GEMM_H
#define NVFP4_PORTABLE_GEMM_H

#include <stdint.h>

#include "group_table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most groups whose table travels by value inside the kernel parameters (4 KB). */
#define NVFP4_PORTABLE_INLINE_CAPACITY 30

/* Output tile of one CTA (rows of a x rows of b): the planner counts tiles with it. */
#define NVFP4_PORTABLE_TILE_M 64
#define NVFP4_PORTABLE_TILE_N 128

/* Enqueues the kernel on stream (a cudaStream_t). The table is either host_entries (num_entries <=
 * NVFP4_PORTABLE_INLINE_CAPACITY, copied into the parameters) or device_table (device memory that
 * must stay unchanged until the kernel has run). Returns the launch's cudaError_t. */
int nvfp4_portable_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                          int32_t num_entries, int32_t total_tiles, void *stream);

#ifdef __cplusplus
}
#endif

#endif
