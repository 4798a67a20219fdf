/* planner.h: validation of one grouped-GEMM call and its group table / tile schedule.
 *
 * Pure C11: no Python, no torch, no CUDA, so every rule here is unit-tested on the CPU
 * (tests/c/test_planner.c). The module hands over one nvfp4_group_input per group as it reads them;
 * the planner checks every field against the problem sizes and writes one nvfp4_group_entry per
 * non-empty group with the first linear tile of that group, so a kernel can find its group by binary
 * search. Groups stream through: the planner keeps no copy of them, so a call touches little memory.
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

typedef struct nvfp4_planner {
    nvfp4_group_entry *entries;  /* room for one entry per group */
    int32_t groups;              /* added so far */
    int32_t count;               /* entries written */
    int64_t tiles;
    int32_t device_index;        /* of abc[0].a: every tensor must be on this CUDA device */
    nvfp4_status device_status;  /* the first device error, reported once everything else is valid */
    nvfp4_error device_error;
} nvfp4_planner;

/* Usage: start; add each group in order (stop at the first error); finish. Empty groups (M == 0) are
 * validated but produce no entry. An error message names the field, e.g. "abc[3].b: ...". Structural
 * rules fail at once; a tensor on the wrong device is reported by finish, so that every other rule is
 * reachable with CPU tensors. Nothing in entries may be used unless finish returns NVFP4_OK. */
void nvfp4_planner_start(nvfp4_planner *planner, nvfp4_group_entry *entries);
nvfp4_status nvfp4_planner_add(nvfp4_planner *planner, const nvfp4_group_input *group, nvfp4_error *error);
nvfp4_status nvfp4_planner_finish(nvfp4_planner *planner, nvfp4_plan *plan, nvfp4_error *error);

/* Blocks of the blocked scale layout that `rows` rows and `k` elements of K need (ceil(rows/128), ceil(k/64)). */
int64_t nvfp4_scale_rowblocks(int64_t rows);
int64_t nvfp4_scale_kblocks(int64_t k);

#endif
