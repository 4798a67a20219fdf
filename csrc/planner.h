/* planner.h: validation of one grouped-GEMM call and its group table / tile schedule.
 *
 * Pure C11: no Python, no torch, no CUDA, so every rule here is unit-tested on the CPU
 * (tests/c/test_planner.c). The module hands over one nvfp4_group_input per group; the planner
 * checks every field against the problem sizes, then writes one nvfp4_group_entry per non-empty
 * group with the first linear tile of that group, so a kernel can find its group by binary search.
 */
#ifndef NVFP4_PLANNER_H
#define NVFP4_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include "group_table.h"
#include "tensor_desc.h"

typedef struct nvfp4_group_input {
    nvfp4_tensor_desc a, b, c;   /* abc[g] */
    nvfp4_tensor_desc sfa, sfb;  /* sfasfb_reordered[g], blocked layout */
    int64_t m, n, k, l;          /* problem_sizes[g] */
} nvfp4_group_input;

typedef enum nvfp4_status {
    NVFP4_OK = 0,
    NVFP4_TYPE_ERROR,            /* wrong dtype: becomes TypeError */
    NVFP4_VALUE_ERROR,           /* shape, stride, size, device, alignment: becomes ValueError */
} nvfp4_status;

#define NVFP4_MESSAGE_BYTES 320

typedef struct nvfp4_error {
    char message[NVFP4_MESSAGE_BYTES];
} nvfp4_error;

typedef struct nvfp4_plan {
    int32_t num_entries;         /* non-empty groups written to the table */
    int32_t total_tiles;         /* CTAs of a one-tile-per-CTA launch */
    int32_t device_index;        /* CUDA device that holds every tensor */
} nvfp4_plan;

/* Validates every group and fills entries[0 .. plan->num_entries). entries must have room for
 * num_groups. Empty groups (M == 0) are validated but produce no entry. On failure the error
 * message names the field, e.g. "abc[3].b: ...", and nothing in entries may be used. */
nvfp4_status nvfp4_plan_groups(const nvfp4_group_input *groups, int32_t num_groups, nvfp4_tile_shape tile,
                               nvfp4_group_entry *entries, nvfp4_plan *plan, nvfp4_error *error);

/* Blocks of the blocked scale layout that `rows` rows and `k` elements of K need (ceil(rows/128), ceil(k/64)). */
int64_t nvfp4_scale_rowblocks(int64_t rows);
int64_t nvfp4_scale_kblocks(int64_t k);

#endif
