/* moe_args.c: the rules of a grouped_mm call (moe_args.h). */
#include "moe_args.h"

#include <stdarg.h>
#include <stdio.h>

#define ATOM_ROWS NVFP4_SF_ATOM_ROWS

static nvfp4_status fail(nvfp4_error *error, nvfp4_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    return status;
}

/* "[d0, d1, ...]", as Python prints a list of the sizes or strides. */
static const char *format_list(const int64_t *values, int32_t count, char *text, size_t size) {
    size_t used = (size_t)snprintf(text, size, "[");
    for (int32_t i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(text + used, size - used, i ? ", %lld" : "%lld", (long long)values[i]);
    if (used < size) snprintf(text + used, size - used, "]");
    return text;
}

/* torch's is_contiguous: row-major strides over the dimensions of more than one element, or no elements. */
static int is_contiguous(const nvfp4_tensor_desc *t) {
    int64_t expected = 1;
    for (int32_t d = t->ndim - 1; d >= 0; d--) {
        if (t->sizes[d] == 0) return 1;
        if (t->sizes[d] != 1 && t->strides[d] != expected) return 0;
        expected *= t->sizes[d];
    }
    return 1;
}

/* dtype one of the two given (second may be OTHER: only one), `dim` dimensions, contiguous. */
static nvfp4_status check_tensor(const char *name, const nvfp4_tensor_desc *t, nvfp4_dtype first, nvfp4_dtype second,
                                 const char *expected_dtypes, int32_t dim, nvfp4_error *error) {
    char text[160];
    if (t->dtype != first && (second == NVFP4_DTYPE_OTHER || t->dtype != second))
        return fail(error, NVFP4_TYPE_ERROR, "grouped_mm: %s: expected dtype %s, got %s", name, expected_dtypes,
                    t->dtype_name);
    if (t->ndim != dim)
        return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: %s: expected %d dimensions, got shape %s", name, dim,
                    format_list(t->sizes, t->ndim, text, sizeof text));
    if (!is_contiguous(t))
        return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: %s: expected a contiguous tensor, got strides %s", name,
                    format_list(t->strides, t->ndim, text, sizeof text));
    return NVFP4_OK;
}

static const char FP4_NAMES[] = "torch.float4_e2m1fn_x2 or torch.uint8";
static const char SCALE_NAMES[] = "torch.float8_e4m3fn or torch.uint8";

nvfp4_status nvfp4_moe_check(const nvfp4_moe_args *args, nvfp4_moe_shape *shape, nvfp4_error *error) {
    char text[160];
    nvfp4_status status;
    if ((status = check_tensor("a", &args->a, NVFP4_DTYPE_FP4X2, NVFP4_DTYPE_UINT8, FP4_NAMES, 2, error)) ||
        (status = check_tensor("b", &args->b, NVFP4_DTYPE_FP4X2, NVFP4_DTYPE_UINT8, FP4_NAMES, 3, error)) ||
        (status = check_tensor("a_scale", &args->a_scale, NVFP4_DTYPE_FP8_E4M3FN, NVFP4_DTYPE_UINT8, SCALE_NAMES, 2,
                               error)) ||
        (status = check_tensor("b_scale", &args->b_scale, NVFP4_DTYPE_FP8_E4M3FN, NVFP4_DTYPE_UINT8, SCALE_NAMES, 3,
                               error)) ||
        (status = check_tensor("offsets", &args->offsets, NVFP4_DTYPE_INT32, NVFP4_DTYPE_OTHER, "torch.int32", 1,
                               error)))
        return status;
    const int64_t tokens = args->a.sizes[0], k = 2 * args->a.sizes[1];
    const int64_t experts = args->b.sizes[0], n = args->b.sizes[1];
    if (k == 0 || k % NVFP4_K_ALIGN)
        return fail(error, NVFP4_VALUE_ERROR,
                    "grouped_mm: a: expected K = 2 * a.shape[1] to be a positive multiple of 64, got K = %lld",
                    (long long)k);
    if (2 * args->b.sizes[2] != k)
        return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: b: expected shape [E, N, K/2] with K/2 = %lld (from a), got %s",
                    (long long)(k / 2), format_list(args->b.sizes, 3, text, sizeof text));
    if (experts == 0 || n == 0)
        return fail(error, NVFP4_VALUE_ERROR,
                    "grouped_mm: b: expected at least one expert and one output feature, got %s",
                    format_list(args->b.sizes, 3, text, sizeof text));
    if (args->a_scale.sizes[1] != k / NVFP4_SF_VEC || args->a_scale.sizes[0] % ATOM_ROWS)
        return fail(error, NVFP4_VALUE_ERROR,
                    "grouped_mm: a_scale: expected shape [R, K/16] = [R, %lld] with R a multiple of %d, got %s",
                    (long long)(k / NVFP4_SF_VEC), ATOM_ROWS, format_list(args->a_scale.sizes, 2, text, sizeof text));
    const int64_t b_scale_shape[3] = {experts, (n + ATOM_ROWS - 1) / ATOM_ROWS * ATOM_ROWS, k / NVFP4_SF_VEC};
    for (int d = 0; d < 3; d++)
        if (args->b_scale.sizes[d] != b_scale_shape[d]) {
            char wanted[96];
            return fail(error, NVFP4_VALUE_ERROR,
                        "grouped_mm: b_scale: expected shape [E, round_up(N, 128), K/16] = %s, got %s",
                        format_list(b_scale_shape, 3, wanted, sizeof wanted),
                        format_list(args->b_scale.sizes, 3, text, sizeof text));
        }
    if (args->offsets.sizes[0] != experts)
        return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: offsets: expected shape [E] = [%lld], got %s",
                    (long long)experts, format_list(args->offsets.sizes, 1, text, sizeof text));
    if (args->has_alpha) {
        if ((status = check_tensor("alpha", &args->alpha, NVFP4_DTYPE_FLOAT32, NVFP4_DTYPE_OTHER, "torch.float32", 1,
                                   error)))
            return status;
        if (args->alpha.sizes[0] != experts)
            return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: alpha: expected shape [E] = [%lld], got %s",
                        (long long)experts, format_list(args->alpha.sizes, 1, text, sizeof text));
    }
    if (args->has_out) {
        const nvfp4_dtype out_dtype = args->out_bf16 ? NVFP4_DTYPE_BFLOAT16 : NVFP4_DTYPE_FLOAT16;
        if ((status = check_tensor("out", &args->out, out_dtype, NVFP4_DTYPE_OTHER,
                                   args->out_bf16 ? "torch.bfloat16" : "torch.float16", 2, error)))
            return status;
        if (args->out.sizes[0] != tokens || args->out.sizes[1] != n) {
            const int64_t wanted_shape[2] = {tokens, n};
            char wanted[64];
            return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: out: expected shape [T, N] = %s, got %s",
                        format_list(wanted_shape, 2, wanted, sizeof wanted),
                        format_list(args->out.sizes, 2, text, sizeof text));
        }
    }
    /* One device: a's. */
    static const char *const names[7] = {"a", "b", "a_scale", "b_scale", "offsets", "alpha", "out"};
    const nvfp4_tensor_desc *const all[7] = {&args->a, &args->b, &args->a_scale, &args->b_scale, &args->offsets,
                                             &args->alpha, &args->out};
    const int given[7] = {1, 1, 1, 1, 1, args->has_alpha, args->has_out};
    const nvfp4_device_type where = args->a.device_type;
    if (where != NVFP4_DEVICE_CUDA && where != NVFP4_DEVICE_CPU)
        return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: a: expected a CUDA (or CPU) tensor, got one on %s",
                    args->a.device_type_name);
    for (int i = 1; i < 7; i++)
        if (given[i] && (all[i]->device_type != where || all[i]->device_index != args->a.device_index))
            return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: %s: expected a tensor on a's device (%s:%d), got %s:%d",
                        names[i], args->a.device_type_name, args->a.device_index, all[i]->device_type_name,
                        all[i]->device_index);
    if (where == NVFP4_DEVICE_CUDA) {
        /* The kernels load a, b and the scales 16 bytes at a time and store out 16 bytes at a time. */
        const uintptr_t alignment[7] = {16, 16, 16, 16, 4, 4, 16};
        for (int i = 0; i < 7; i++)
            if (given[i] && all[i]->data % alignment[i])
                return fail(error, NVFP4_VALUE_ERROR, "grouped_mm: %s: expected a %d-byte aligned data pointer",
                            names[i], (int)alignment[i]);
    }
    /* The sizes travel in 32 bits (nvfp4_moe_shape, the kernels' table), on either device. */
    if (tokens > INT32_MAX - 15 * (int64_t)NVFP4_MOE_MAX_EXPERTS || n > INT32_MAX / 2 || k > INT32_MAX ||
        args->a_scale.sizes[0] > INT32_MAX || experts > NVFP4_MOE_MAX_EXPERTS)
        return fail(error, NVFP4_VALUE_ERROR,
                    "grouped_mm: expected T < 2^31 - %d, N < 2^30, K < 2^31, a_scale's rows < 2^31 and at most "
                    "%d experts, got T = %lld, N = %lld, K = %lld, %lld rows, E = %lld",
                    15 * NVFP4_MOE_MAX_EXPERTS, NVFP4_MOE_MAX_EXPERTS, (long long)tokens, (long long)n,
                    (long long)k, (long long)args->a_scale.sizes[0], (long long)experts);
    shape->tokens = (int32_t)tokens;
    shape->experts = (int32_t)experts;
    shape->n = (int32_t)n;
    shape->k = (int32_t)k;
    shape->scale_rows = (int32_t)args->a_scale.sizes[0];
    shape->device_type = where;
    shape->device_index = args->a.device_index;
    return NVFP4_OK;
}

nvfp4_status nvfp4_moe_check_offsets(const int32_t *ends, const nvfp4_moe_shape *shape, nvfp4_error *error) {
    int64_t start = 0, scale_row = 0;
    for (int32_t e = 0; e < shape->experts; e++) {
        const int64_t end = ends[e];
        if (end < start || end > shape->tokens)
            return fail(error, NVFP4_VALUE_ERROR,
                        "grouped_mm: offsets: expected non-decreasing ends within [0, T = %d], got offsets[%d] = %lld "
                        "after %lld",
                        shape->tokens, e, (long long)end, (long long)start);
        const int64_t rows = end - start, block_rows = (rows + ATOM_ROWS - 1) / ATOM_ROWS * ATOM_ROWS;
        if (rows && scale_row + rows > shape->scale_rows)
            return fail(error, NVFP4_VALUE_ERROR,
                        "grouped_mm: a_scale: expert %d's block (rows %lld..%lld) runs past its %d rows", e,
                        (long long)scale_row, (long long)(scale_row + rows), shape->scale_rows);
        scale_row += block_rows;
        start = end;
    }
    return NVFP4_OK;
}

nvfp4_moe_call nvfp4_moe_make_call(const nvfp4_moe_args *args, const nvfp4_moe_shape *shape, uintptr_t out_data) {
    nvfp4_moe_call call;
    call.a = (const uint8_t *)args->a.data;
    call.b = (const uint8_t *)args->b.data;
    call.a_scale = (const uint8_t *)args->a_scale.data;
    call.b_scale = (const uint8_t *)args->b_scale.data;
    call.out = (uint8_t *)(args->has_out ? args->out.data : out_data);
    call.offsets = (const int32_t *)args->offsets.data;
    call.alpha = args->has_alpha ? (const float *)args->alpha.data : NULL;
    call.tokens = shape->tokens;
    call.experts = shape->experts;
    call.n = shape->n;
    call.k = shape->k;
    call.scale_rows = shape->scale_rows;
    call.out_bf16 = args->out_bf16;
    call.device = shape->device_index;
    return call;
}
