/* group_table.h: the per-group launch metadata shared by the C planner and the CUDA kernels.
 *
 * Plain C, no torch, no CUDA: the planner fills these on the host, the kernels read them either
 * from their by-value kernel parameter (small tables) or from device memory (large tables).
 * Every stride is in bytes so the kernels never need element sizes.
 */
#ifndef NVFP4_GROUP_TABLE_H
#define NVFP4_GROUP_TABLE_H

#include <stdint.h>

/* Blocked scale layout, the one the leaderboard's sfasfb_reordered arrives in: one 512-byte atom holds the
 * scales of 128 rows x 4 scale columns (64 K elements); inside it row r, column j sits at
 * (r % 32) * 16 + ((r % 128) / 32) * 4 + j. */
#define NVFP4_SF_VEC 16          /* K elements per scale */
#define NVFP4_SF_ATOM_ROWS 128
#define NVFP4_SF_ATOM_COLS 4
#define NVFP4_SF_ATOM_BYTES 512
#define NVFP4_K_ALIGN 64         /* K must be a multiple of this: one scale atom column block */

/* One non-empty group (M > 0). 128 bytes, so 30 of them plus the header fit the 4 KB parameter space. */
typedef struct nvfp4_group_entry {
    const uint8_t *a;            /* [M, K/2] packed e2m1 per batch slice */
    const uint8_t *b;            /* [N, K/2] packed e2m1 per batch slice */
    const uint8_t *sfa;          /* blocked e4m3 scales of a */
    const uint8_t *sfb;          /* blocked e4m3 scales of b */
    uint8_t *c;                  /* [M, N] fp16 per batch slice */
    int64_t a_batch_stride;
    int64_t b_batch_stride;
    int64_t c_batch_stride;
    int64_t sfa_batch_stride;
    int64_t sfb_batch_stride;
    int32_t m, n, k, l;
    int32_t a_row_stride;
    int32_t b_row_stride;
    int32_t c_row_stride;
    int32_t sfa_rowblock_stride; /* between 128-row blocks */
    int32_t sfa_kblock_stride;   /* between 64-K blocks */
    int32_t sfb_rowblock_stride;
    int32_t sfb_kblock_stride;
    int32_t tile_start;          /* this group's first work item in the launch (what it counts: below) */
} nvfp4_group_entry;

/* tile_start counts output tiles of NVFP4_TILE_M rows of a (tokens) by NVFP4_TILE_N rows of b (weights), M first,
 * per batch slice (plan.total_tiles counts the same tiles): the portable kernel's work, one CTA per tile, each
 * finding its tile from tile_start (locate_tile). The stream-K Hopper kernel does not read it: it plans its units
 * from the sizes (kernels/hopper_schedule.h). */
#define NVFP4_TILE_M 64
#define NVFP4_TILE_N 128

#ifdef __CUDACC__
#define NVFP4_HOST_DEVICE __host__ __device__
#else
#define NVFP4_HOST_DEVICE
#endif

/* Most groups whose table travels by value inside the kernel parameters (4 KB). */
#define NVFP4_INLINE_CAPACITY 30

#endif
