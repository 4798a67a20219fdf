/* device.h: everything that talks to the CUDA runtime, behind a C interface without CUDA types.
 *
 * Built as plain C against cudart (static); in a build without CUDA every entry reports that the
 * package was built without it. Streams travel as integers (the raw cudaStream_t that torch reports).
 */
#ifndef NVFP4_DEVICE_H
#define NVFP4_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "group_table.h"
#include "launchers.h"
#include "planner.h"

typedef struct nvfp4_cuda nvfp4_cuda;

typedef struct nvfp4_cuda_stats {
    uint64_t inline_launches;    /* table passed by value in the kernel parameters */
    uint64_t ring_launches;      /* table copied through the pinned ring */
    uint64_t ring_waits;         /* ring slots that were still in use and had to be waited for */
    uint64_t captured_tables;    /* tables given their own buffers because a graph capture holds them */
    uint64_t streamk_launches;   /* launches of the stream-K sm_90a kernel */
    uint64_t portable_launches;  /* launches of the portable kernel */
} nvfp4_cuda_stats;

typedef struct nvfp4_device_info {
    char name[256];
    int major, minor;
    int multiprocessors;
    int l2_bytes;
} nvfp4_device_info;

extern const int nvfp4_built_with_cuda;
extern const int32_t nvfp4_cuda_ring_slots;  /* launches through the ring that may be in flight before one waits */

/* By-value capacity of the group table in a kernel launch. */
int32_t nvfp4_cuda_inline_capacity(void);

nvfp4_cuda *nvfp4_cuda_create(void);
void nvfp4_cuda_destroy(nvfp4_cuda *cuda);
nvfp4_cuda_stats nvfp4_cuda_get_stats(const nvfp4_cuda *cuda);

/* Which kernel family runs. auto: on compute capability 9.0 the stream-K Hopper kernel (hopper_streamk.cu), except
 * for a call past its limits (launchers.h); the portable kernel for those and everywhere else. portable: the
 * portable kernel everywhere. */
typedef enum nvfp4_kernel_choice { NVFP4_KERNEL_AUTO, NVFP4_KERNEL_PORTABLE } nvfp4_kernel_choice;
void nvfp4_cuda_choose_kernel(nvfp4_cuda *cuda, nvfp4_kernel_choice choice);

/* How a planned call runs: the kernel family for its device and the shape of the launch. */
typedef struct nvfp4_launch_config {
    nvfp4_launch_fn launch;
    nvfp4_launch_shape shape;
} nvfp4_launch_config;

/* Chooses the kernel family for device plan->device_index and its launch shape (for the stream-K kernel its
 * token scratch and chunk limit, hopper_schedule.h). Part of planning a call: nothing is enqueued.
 * Returns 0, or -1 with the error written to message. */
int nvfp4_cuda_configure(nvfp4_cuda *cuda, nvfp4_group_entry *entries, const nvfp4_plan *plan,
                         nvfp4_launch_config *config, char *message, size_t message_size);

/* Enqueues a configured call on `stream` of its device, whichever device is current. Returns 0, or -1 with
 * the CUDA error written to message. */
int nvfp4_cuda_launch(nvfp4_cuda *cuda, const nvfp4_group_entry *entries, const nvfp4_plan *plan,
                      const nvfp4_launch_config *config, uintptr_t stream, char *message, size_t message_size);

int nvfp4_cuda_device_info(int32_t device, nvfp4_device_info *info, char *message, size_t message_size);

/* An MoE-layout call (grouped_mm): its group table written on the device from the offsets (launchers.h), then
 * the portable kernel over a grid sized by a bound, on `stream` (a cudaStream_t), nothing read back. The caller
 * checked the tensors. Returns 0, or -1 with the error written to message. */
int nvfp4_cuda_moe_launch(nvfp4_cuda *cuda, const nvfp4_moe_call *call, uintptr_t stream, char *message,
                          size_t message_size);

/* Copies `count` int32 from device memory at `source` into `host`, in order on `stream`, and waits for them: the
 * debug check of grouped_mm's offsets. Refuses while the stream is being captured (a graph cannot hold a wait).
 * Returns 0, or -1 with the error written to message. */
int nvfp4_cuda_read_ints(int32_t device, uintptr_t stream, const int32_t *source, int32_t count,
                         int32_t *host, char *message, size_t message_size);

#endif
