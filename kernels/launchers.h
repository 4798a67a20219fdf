/* launchers.h: C interface of the kernel families (portable_gemm.cu, hopper_gemm.cu), for
 * csrc/device.c. Free of CUDA types. */
#ifndef NVFP4_LAUNCHERS_H
#define NVFP4_LAUNCHERS_H

#include <stdint.h>

#include "group_table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each enqueues its kernel on stream (a cudaStream_t), one CTA per NVFP4_TILE_M x NVFP4_TILE_N tile. The
 * table is either host_entries (num_entries <= NVFP4_INLINE_CAPACITY, copied into the parameters) or
 * device_table (device memory that must stay unchanged until the kernel has run). Returns the launch's
 * cudaError_t. */
typedef int (*nvfp4_launch_fn)(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                               int32_t num_entries, int32_t total_tiles, void *stream);

/* Any GPU from sm_80 on (mma.sync). */
int nvfp4_portable_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                          int32_t num_entries, int32_t total_tiles, void *stream);

/* Hopper only (sm_90a: wgmma); the caller checks the device is compute capability 9.0. */
int nvfp4_hopper_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                        int32_t num_entries, int32_t total_tiles, void *stream);

#ifdef __cplusplus
}
#endif

#endif
