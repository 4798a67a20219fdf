/* launchers.h: C interface of the kernel families (portable_gemm.cu, hopper_streamk.cu), for
 * csrc/device.c. Free of CUDA types. */
#ifndef NVFP4_LAUNCHERS_H
#define NVFP4_LAUNCHERS_H

#include <stdint.h>

#include "group_table.h"

/* Devices a build supports (CUDA device ordinals below this). */
#define NVFP4_MAX_DEVICES 64

#ifdef __cplusplus
extern "C" {
#endif

struct nvfp4_moe_call;

/* What one launch covers. The portable kernel runs one CTA per NVFP4_TILE_M x NVFP4_TILE_N tile (units of
 * them, counted by the table's tile_start fields; grid unused); the stream-K Hopper kernel runs `grid`
 * persistent CTAs over the schedule of hopper_schedule.h (units unused). */
typedef struct nvfp4_launch_shape {
    int32_t units;
    int32_t grid;
    int32_t device;              /* the current device, for per-device kernel attributes */
    int64_t scratch_bytes;       /* stream-K Hopper kernel: its token scratch (hopper_schedule.h) */
    int64_t schedule_units;      /* stream-K Hopper kernel: its schedule's units (hopper_schedule.h) */
    int64_t token_rows;          /* stream-K Hopper kernel: padded token rows, >= 1 (the pre-pass's grid) */
    int32_t max_kblocks;         /* stream-K Hopper kernel: the most 64-K blocks of any group */
    int32_t chunk_rows;          /* stream-K Hopper kernel: the call's chunk limit (hopper_choose_chunk_rows) */
    const float *alpha;          /* portable kernel: a factor per table entry on the device, or null for 1 */
    int32_t out_bf16;            /* portable kernel: c holds bfloat16 instead of float16 */
    int32_t bounded_grid;        /* portable kernel: units is a bound; CTAs past the table's last tile exit */
    const void *schedule_tables; /* stream-K Hopper kernel: its schedule's tables, made on the device
                                    (hopper_device_tables); null: every pre-pass block builds them from the table */
    const struct nvfp4_moe_call *moe_call; /* stream-K Hopper kernel: an MoE-layout call of at most
                                    NVFP4_MOE_PREPASS_EXPERTS experts whose pre-pass derives the layout from the
                                    offsets itself and writes device_table (no table kernel before it) */
} nvfp4_launch_shape;

/* Each enqueues its kernel on stream (a cudaStream_t). The table is either host_entries (num_entries <=
 * NVFP4_INLINE_CAPACITY, copied into the parameters) or device_table (device memory that must stay
 * unchanged until the kernel has run). Returns the launch's cudaError_t. */
typedef int (*nvfp4_launch_fn)(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                               int32_t num_entries, const nvfp4_launch_shape *shape, void *stream);

/* Any GPU from sm_80 on (mma.sync). */
int nvfp4_portable_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                          int32_t num_entries, const nvfp4_launch_shape *shape, void *stream);

/* The stream-K Hopper kernel (hopper_streamk.cu), Hopper only (sm_90a: wgmma, bulk copies, mbarriers; the caller
 * checks the device is compute capability 9.0): grid = the SM count (at most NVFP4_STREAMK_MAX_CTAS),
 * scratch_bytes, schedule_units and chunk_rows from hopper_schedule.h, at most NVFP4_STREAMK_MAX_GROUPS entries.
 * Calls past these limits run the portable kernel. */
#define NVFP4_STREAMK_MAX_GROUPS 1024
#define NVFP4_STREAMK_MAX_CTAS 256
#define NVFP4_STREAMK_MAX_KBLOCKS 65535 /* the pre-pass's grid.y: K <= 64 * 65535 */
#define NVFP4_MOE_PREPASS_EXPERTS 256   /* experts whose layout the MoE pre-pass derives itself, one a thread */
int nvfp4_hopper_streamk_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                int32_t num_entries, const nvfp4_launch_shape *shape, void *stream);

/* Writes the group table of an MoE-layout call (grouped_mm) into device memory on `stream`, from the cumulative
 * expert end offsets that live on the device: one entry per expert (M = 0 for an empty one), ends clamped into
 * [previous end, tokens], an expert whose scale block would run past a_scale's rows left empty. tile_start counts
 * the portable kernel's tiles. With call->schedule_tables, also the stream-K schedule's tables of those entries.
 * At most NVFP4_MOE_MAX_EXPERTS experts. Returns the launch's cudaError_t. */
#define NVFP4_MOE_MAX_EXPERTS 1024
typedef struct nvfp4_moe_call {
    const uint8_t *a, *b, *a_scale, *b_scale;
    uint8_t *out;
    const int32_t *offsets;
    const float *alpha;
    int32_t tokens, experts, n, k, scale_rows, out_bf16, device;
    /* The stream-K kernel's schedule tables (hopper_device_tables, hopper_schedule.h) for `ctas` CTAs, which the
     * table kernel also writes when non-null; the launcher sets both. */
    void *schedule_tables;
    int32_t ctas;
} nvfp4_moe_call;
int nvfp4_moe_table_launch(const nvfp4_moe_call *call, nvfp4_group_entry *table, void *stream);

#ifdef __cplusplus
}
#endif

#endif
