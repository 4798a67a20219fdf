/* moe_args.h: validation of one grouped_mm call (the MoE layout: tokens sorted by expert, weights stacked,
 * expert end offsets on the device), in plain C like the planner: no Python, no torch, no CUDA.
 *
 * The module reads the tensors through the C++ bridge and hands their descriptions over; the rules here say
 * what grouped_mm accepts (python/nvfp4_group_gemm/moe.py documents the layout) and word every refusal with the
 * argument's name and what was expected. What the host cannot see, the offsets' values, is checked on the
 * device's copy only in the debug mode (nvfp4_moe_check_offsets); otherwise the kernels clamp them.
 */
#ifndef NVFP4_MOE_ARGS_H
#define NVFP4_MOE_ARGS_H

#include <stdint.h>

#include "launchers.h"
#include "planner.h"
#include "tensor_desc.h"

/* The call's tensors; has_alpha / has_out say whether those were given. */
typedef struct nvfp4_moe_args {
    nvfp4_tensor_desc a, b, a_scale, b_scale, offsets, alpha, out;
    int has_alpha, has_out;
    int out_bf16;                /* out_dtype: bfloat16 (1) or float16 (0) */
} nvfp4_moe_args;

/* What a valid call is: its sizes and where it runs. */
typedef struct nvfp4_moe_shape {
    int32_t tokens, experts, n, k, scale_rows;
    nvfp4_device_type device_type; /* NVFP4_DEVICE_CUDA or NVFP4_DEVICE_CPU */
    int32_t device_index;
} nvfp4_moe_shape;

/* Checks every rule a call must meet (dtypes, dimensions, contiguity, sizes that agree, one device, and for
 * CUDA tensors alignment and 32-bit sizes). Returns NVFP4_OK with *shape filled, or the error (TypeError for a
 * dtype, ValueError for anything else) with its message. */
nvfp4_status nvfp4_moe_check(const nvfp4_moe_args *args, nvfp4_moe_shape *shape, nvfp4_error *error);

/* The debug check of the offsets' values (a host copy of them): non-decreasing ends within [0, T], and every
 * expert's scale block (at the cumulative sum of round_up(m, 128)) inside a_scale's rows. */
nvfp4_status nvfp4_moe_check_offsets(const int32_t *ends, const nvfp4_moe_shape *shape, nvfp4_error *error);

/* The kernels' view of a checked CUDA call; out is args->out's data, or `out_data` where the module allocated
 * the output. */
nvfp4_moe_call nvfp4_moe_make_call(const nvfp4_moe_args *args, const nvfp4_moe_shape *shape, uintptr_t out_data);

#endif
