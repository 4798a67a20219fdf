/* planner.c: every rule an input must satisfy, and the group table a kernel launch reads.
 *
 * Checks run group by group, field by field (problem size, a, b, c, sfa, sfb); a device error is
 * held back until every group has passed the other rules, which lets the CPU test-suite reach every
 * rule with CPU tensors. The first violation stops the plan with a message that names the field,
 * says what was expected and what was given.
 */
#include "planner.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static_assert(sizeof(nvfp4_group_entry) == 128, "group entries are packed for the 4 KB parameter space");

/* Alignment every operand base address and every byte stride between rows/blocks must have, so the
 * kernels can use 16-byte loads. */
#define NVFP4_ALIGN_BYTES 16

int64_t nvfp4_scale_rowblocks(int64_t rows) { return (rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS; }

int64_t nvfp4_scale_kblocks(int64_t k) { return (k + NVFP4_K_ALIGN - 1) / NVFP4_K_ALIGN; }

/* The field a message starts with, e.g. {"abc[%d].b", 3}. Formatted only when a check fails: the
 * planner runs on every call, and naming every field up front would cost about a microsecond a group. */
typedef struct field_ref {
    const char *format;
    int32_t group;
} field_ref;

/* Checks run on every call and are inlined into one straight pass; wording an error is the cold path. */
#define HOT static inline __attribute__((always_inline))
#define COLD static __attribute__((cold, noinline))

COLD nvfp4_status fail(nvfp4_error *error, nvfp4_status status, field_ref field, const char *fmt, ...) {
    int used = snprintf(error->message, sizeof error->message, field.format, field.group);
    if (used >= 0 && (size_t)used < sizeof error->message)
        used += snprintf(error->message + used, sizeof error->message - (size_t)used, ": ");
    if (used < 0 || (size_t)used >= sizeof error->message) return status;
    va_list args;
    va_start(args, fmt);
    vsnprintf(error->message + used, sizeof error->message - (size_t)used, fmt, args);
    va_end(args);
    return status;
}

/* "[a, b, c]" into buf. */
COLD const char *format_dims(char *buf, size_t size, const int64_t *dims, int32_t ndim) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < ndim && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "[", dims[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, ndim ? "]" : "[]");
    return buf;
}

HOT int64_t numel(const nvfp4_tensor_desc *t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++) n *= t->sizes[i];
    return n;
}

HOT nvfp4_status check_shape(const nvfp4_tensor_desc *t, field_ref field, const char *what,
                                const int64_t *expected, int32_t ndim, nvfp4_error *error) {
    char want[96], got[96];
    int same = t->ndim == ndim;
    for (int32_t i = 0; same && i < ndim; i++) same = t->sizes[i] == expected[i];
    if (same) return NVFP4_OK;
    return fail(error, NVFP4_VALUE_ERROR, field, "expected shape %s = %s, got %s", what,
                format_dims(want, sizeof want, expected, ndim), format_dims(got, sizeof got, t->sizes, t->ndim));
}

HOT nvfp4_status check_aligned(const nvfp4_tensor_desc *t, field_ref field, nvfp4_error *error) {
    if (t->data % NVFP4_ALIGN_BYTES == 0 || numel(t) == 0) return NVFP4_OK;
    return fail(error, NVFP4_VALUE_ERROR, field, "expected a data pointer aligned to %d bytes, got 0x%" PRIxPTR,
                NVFP4_ALIGN_BYTES, t->data);
}

/* A byte stride that the kernels step with: it must keep 16-byte alignment and fit in `limit`.
 * Only checked when the dimension has more than one index (otherwise torch's stride is arbitrary). */
HOT nvfp4_status check_step(const nvfp4_tensor_desc *t, field_ref field, int32_t dim, const char *dim_name,
                               int64_t element_bytes, int64_t limit, nvfp4_error *error) {
    if (t->sizes[dim] <= 1) return NVFP4_OK;
    int64_t bytes = t->strides[dim] * element_bytes;
    char got[160];
    if (bytes % NVFP4_ALIGN_BYTES != 0)
        return fail(error, NVFP4_VALUE_ERROR, field,
                    "expected the stride of dimension %d (%s) to be a multiple of %d bytes, got %" PRId64
                    " bytes (strides %s)",
                    dim, dim_name, NVFP4_ALIGN_BYTES, bytes, format_dims(got, sizeof got, t->strides, t->ndim));
    if (bytes < 0 || bytes > limit)
        return fail(error, NVFP4_VALUE_ERROR, field,
                    "expected the stride of dimension %d (%s) to lie in [0, %" PRId64 "] bytes, got %" PRId64, dim,
                    dim_name, limit, bytes);
    return NVFP4_OK;
}

HOT int64_t step_or_zero(const nvfp4_tensor_desc *t, int32_t dim, int64_t element_bytes) {
    return t->sizes[dim] > 1 ? t->strides[dim] * element_bytes : 0;
}

/* a or b: [rows, K/2, L] packed e2m1, K-contiguous. */
HOT nvfp4_status check_operand(const nvfp4_tensor_desc *t, field_ref field, const char *shape_name, int64_t rows,
                                  int64_t k, int64_t l, nvfp4_error *error) {
    nvfp4_status s;
    if (t->dtype != NVFP4_DTYPE_FP4X2 && t->dtype != NVFP4_DTYPE_UINT8)
        return fail(error, NVFP4_TYPE_ERROR, field, "expected dtype torch.float4_e2m1fn_x2 (or a torch.uint8 view), got %s",
                    t->dtype_name);
    const int64_t shape[3] = {rows, k / 2, l};
    if ((s = check_shape(t, field, shape_name, shape, 3, error))) return s;
    if (rows == 0) return NVFP4_OK; /* no element (K/2 and L are >= 1): any strides will do */
    if (t->strides[1] != 1) {
        char got[96];
        return fail(error, NVFP4_VALUE_ERROR, field, "expected K-contiguous rows (stride 1 along dimension 1), got strides %s",
                    format_dims(got, sizeof got, t->strides, 3));
    }
    if ((s = check_step(t, field, 0, "rows", 1, INT32_MAX, error))) return s;
    if ((s = check_step(t, field, 2, "L", 1, INT64_MAX, error))) return s;
    return check_aligned(t, field, error);
}

/* c: [M, N, L] fp16, N-contiguous, rows and slices that do not overlap (the kernel writes each once). */
HOT nvfp4_status check_output(const nvfp4_tensor_desc *t, field_ref field, int64_t m, int64_t n, int64_t l,
                                 nvfp4_error *error) {
    nvfp4_status s;
    char got[96];
    if (t->dtype != NVFP4_DTYPE_FLOAT16)
        return fail(error, NVFP4_TYPE_ERROR, field, "expected dtype torch.float16, got %s", t->dtype_name);
    const int64_t shape[3] = {m, n, l};
    if ((s = check_shape(t, field, "[M, N, L]", shape, 3, error))) return s;
    if (m == 0) return NVFP4_OK; /* no element (N and L are >= 1): any strides will do */
    if (n > 1 && t->strides[1] != 1)
        return fail(error, NVFP4_VALUE_ERROR, field, "expected N-contiguous rows (stride 1 along dimension 1), got strides %s",
                    format_dims(got, sizeof got, t->strides, 3));
    /* Non-overlap: take the row and batch dimensions that have more than one index, inner (smaller
     * stride) first; each must step past everything the dimensions inside it span. */
    int32_t dims[2] = {0, 2};
    if (t->strides[2] < t->strides[0]) dims[0] = 2, dims[1] = 0;
    int64_t span = n; /* elements covered by one row, then by all inner dimensions */
    for (int i = 0; i < 2; i++) {
        int32_t d = dims[i];
        if (t->sizes[d] <= 1) continue;
        if (t->strides[d] < span) {
            char sizes[96];
            return fail(error, NVFP4_VALUE_ERROR, field,
                        "expected rows and batch slices that do not overlap (each output element is written once), got "
                        "strides %s for shape %s",
                        format_dims(got, sizeof got, t->strides, 3), format_dims(sizes, sizeof sizes, t->sizes, 3));
        }
        span = t->strides[d] * (t->sizes[d] - 1) + span;
    }
    if (t->sizes[0] > 1 && t->strides[0] > INT32_MAX / 2)
        return fail(error, NVFP4_VALUE_ERROR, field, "expected a row stride of at most %d elements, got %" PRId64,
                    INT32_MAX / 2, t->strides[0]);
    return check_aligned(t, field, error);
}

/* sfa or sfb: blocked e4m3 scales, a view [32, 4, rest_mn, 4, rest_k, L] whose 512-byte atoms are
 * contiguous (strides 16, 4, 1 inside the atom). Larger block counts than needed are accepted. */
HOT nvfp4_status check_scales(const nvfp4_tensor_desc *t, field_ref field, int64_t rows, int64_t k, int64_t l,
                                 nvfp4_error *error) {
    nvfp4_status s;
    char got[96], want[96];
    if (t->dtype != NVFP4_DTYPE_FP8_E4M3FN)
        return fail(error, NVFP4_TYPE_ERROR, field, "expected dtype torch.float8_e4m3fn, got %s", t->dtype_name);
    const int64_t need[6] = {32, 4, nvfp4_scale_rowblocks(rows), 4, nvfp4_scale_kblocks(k), l};
    int fits = t->ndim == 6 && t->sizes[0] == 32 && t->sizes[1] == 4 && t->sizes[3] == 4 && t->sizes[2] >= need[2] &&
               t->sizes[4] >= need[4] && t->sizes[5] >= need[5];
    if (!fits)
        return fail(error, NVFP4_VALUE_ERROR, field,
                    "expected the blocked scale layout [32, 4, >= ceil(rows/128), 4, >= K/64, >= L] = at least %s for %" PRId64
                    " rows and K = %" PRId64 ", got %s",
                    format_dims(want, sizeof want, need, 6), rows, k, format_dims(got, sizeof got, t->sizes, t->ndim));
    if (t->strides[0] != 16 || t->strides[1] != 4 || t->strides[3] != 1)
        return fail(error, NVFP4_VALUE_ERROR, field,
                    "expected contiguous 512-byte scale atoms (strides 16, 4 and 1 along dimensions 0, 1 and 3), got "
                    "strides %s",
                    format_dims(got, sizeof got, t->strides, 6));
    if ((s = check_step(t, field, 2, "128-row blocks", 1, INT32_MAX, error))) return s;
    if ((s = check_step(t, field, 4, "64-K blocks", 1, INT32_MAX, error))) return s;
    if ((s = check_step(t, field, 5, "L", 1, INT64_MAX, error))) return s;
    return check_aligned(t, field, error);
}

HOT nvfp4_status check_sizes(const nvfp4_group_input *g, field_ref field, nvfp4_error *error) {
    if (g->m < 0 || g->n < 1 || g->k < 1 || g->l < 1)
        return fail(error, NVFP4_VALUE_ERROR, field,
                    "expected M >= 0, N >= 1, K >= 1 and L >= 1, got (%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ")",
                    g->m, g->n, g->k, g->l);
    if (g->k % NVFP4_K_ALIGN != 0)
        return fail(error, NVFP4_VALUE_ERROR, field, "expected K to be a multiple of %d, got K = %" PRId64, NVFP4_K_ALIGN,
                    g->k);
    if (g->m > INT32_MAX || g->n > INT32_MAX || g->k > INT32_MAX || g->l > INT32_MAX)
        return fail(error, NVFP4_VALUE_ERROR, field, "expected M, N, K and L below 2^31, got (%" PRId64 ", %" PRId64
                    ", %" PRId64 ", %" PRId64 ")", g->m, g->n, g->k, g->l);
    return NVFP4_OK;
}

HOT int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

HOT void fill_entry(const nvfp4_group_input *g, int32_t tile_start, nvfp4_group_entry *e) {
    e->a = (const uint8_t *)g->a.data;
    e->b = (const uint8_t *)g->b.data;
    e->c = (uint8_t *)g->c.data;
    e->sfa = (const uint8_t *)g->sfa.data;
    e->sfb = (const uint8_t *)g->sfb.data;
    e->a_batch_stride = step_or_zero(&g->a, 2, 1);
    e->b_batch_stride = step_or_zero(&g->b, 2, 1);
    e->c_batch_stride = step_or_zero(&g->c, 2, 2);
    e->sfa_batch_stride = step_or_zero(&g->sfa, 5, 1);
    e->sfb_batch_stride = step_or_zero(&g->sfb, 5, 1);
    e->m = (int32_t)g->m;
    e->n = (int32_t)g->n;
    e->k = (int32_t)g->k;
    e->l = (int32_t)g->l;
    e->a_row_stride = (int32_t)step_or_zero(&g->a, 0, 1);
    e->b_row_stride = (int32_t)step_or_zero(&g->b, 0, 1);
    e->c_row_stride = (int32_t)step_or_zero(&g->c, 0, 2);
    e->sfa_rowblock_stride = (int32_t)step_or_zero(&g->sfa, 2, 1);
    e->sfa_kblock_stride = (int32_t)step_or_zero(&g->sfa, 4, 1);
    e->sfb_rowblock_stride = (int32_t)step_or_zero(&g->sfb, 2, 1);
    e->sfb_kblock_stride = (int32_t)step_or_zero(&g->sfb, 4, 1);
    e->tile_start = tile_start;
}

/* The devices of one group's tensors, against the device of abc[0].a. */
HOT nvfp4_status check_group_devices(const nvfp4_planner *p, const nvfp4_group_input *g, int32_t group,
                                     nvfp4_error *error) {
    static const char *const names[5] = {"abc[%d].a", "abc[%d].b", "abc[%d].c", "sfasfb_reordered[%d].sfa",
                                         "sfasfb_reordered[%d].sfb"};
    const nvfp4_tensor_desc *tensors[5] = {&g->a, &g->b, &g->c, &g->sfa, &g->sfb};
    for (int j = 0; j < 5; j++) {
        const nvfp4_tensor_desc *t = tensors[j];
        if (t->device_type != NVFP4_DEVICE_CUDA)
            return fail(error, NVFP4_VALUE_ERROR, (field_ref){names[j], group},
                        "expected a CUDA tensor, got a tensor on %s", t->device_type_name);
        if (t->device_index != p->device_index)
            return fail(error, NVFP4_VALUE_ERROR, (field_ref){names[j], group},
                        "expected a tensor on cuda:%d (the device of abc[0].a), got cuda:%d", p->device_index,
                        t->device_index);
    }
    return NVFP4_OK;
}

void nvfp4_planner_start(nvfp4_planner *planner, nvfp4_group_entry *entries) {
    planner->entries = entries;
    planner->groups = planner->count = 0;
    planner->tiles = 0;
    planner->device_index = -1;
    planner->device_status = NVFP4_OK;
}

/* ---- Fast acceptance ----
 *
 * Almost every call brings groups in the leaderboard's layout. For them one straight pass of comparisons,
 * combined with & and without a branch per rule, decides "valid"; anything else (M = 0, a size-1 dimension
 * with an odd stride, a wrong field, a device to report) takes the rule-by-rule checks above, which also word
 * the error. On 8 groups in that layout callgrind counts 445 instructions and 18 conditional branches a group
 * for the pass, against 600 and 116 for the detailed checks. Every condition here implies the detailed rule it
 * stands for: a group the fast pass accepts is one the detailed checks accept, and both paths write the same
 * entry. */

/* The byte step of a dimension is a 16-byte multiple in [0, limit] (check_step, for any size). */
HOT int plain_step(int64_t stride, int64_t element_bytes, int64_t limit) {
    const int64_t bytes = stride * element_bytes;
    return (bytes % NVFP4_ALIGN_BYTES == 0) & (bytes >= 0) & (bytes <= limit);
}

/* a or b as check_operand accepts it, for rows >= 1. */
HOT int plain_operand(const nvfp4_tensor_desc *t, int64_t rows, int64_t k, int64_t l) {
    const int64_t *size = t->sizes, *stride = t->strides;
    return ((t->dtype == NVFP4_DTYPE_FP4X2) | (t->dtype == NVFP4_DTYPE_UINT8)) & (size[0] == rows) &
           (size[1] == k / 2) & (size[2] == l) & (stride[1] == 1) & plain_step(stride[0], 1, INT32_MAX) &
           plain_step(stride[2], 1, INT64_MAX) & (t->data % NVFP4_ALIGN_BYTES == 0);
}

/* c as check_output accepts it, for m >= 1: rows of n elements one after another, batch slices past them. The
 * slice bound is computed unsigned: it wraps (harmlessly) only for a row stride that another term refuses. */
HOT int plain_output(const nvfp4_tensor_desc *t, int64_t m, int64_t n, int64_t l) {
    const int64_t *size = t->sizes, *stride = t->strides;
    const uint64_t slice_span = (uint64_t)stride[0] * (uint64_t)(m - 1) + (uint64_t)n;
    return (t->dtype == NVFP4_DTYPE_FLOAT16) & (size[0] == m) & (size[1] == n) & (size[2] == l) & (stride[1] == 1) &
           (stride[0] >= n) & (stride[0] <= INT32_MAX / 2) &
           ((l == 1) | ((stride[2] >= 0) & ((uint64_t)stride[2] >= slice_span))) & (t->data % NVFP4_ALIGN_BYTES == 0);
}

/* Blocked scales as check_scales accepts them. */
HOT int plain_scales(const nvfp4_tensor_desc *t, int64_t rows, int64_t k, int64_t l) {
    const int64_t *size = t->sizes, *stride = t->strides;
    return (t->dtype == NVFP4_DTYPE_FP8_E4M3FN) & (size[0] == 32) & (size[1] == 4) &
           (size[2] >= nvfp4_scale_rowblocks(rows)) & (size[3] == 4) & (size[4] >= nvfp4_scale_kblocks(k)) &
           (size[5] >= l) & (stride[0] == 16) & (stride[1] == 4) & (stride[3] == 1) &
           plain_step(stride[2], 1, INT32_MAX) & plain_step(stride[4], 1, INT32_MAX) &
           plain_step(stride[5], 1, INT64_MAX) & (t->data % NVFP4_ALIGN_BYTES == 0);
}

HOT int on_device(const nvfp4_tensor_desc *t, int32_t device_index) {
    return (t->device_type == NVFP4_DEVICE_CUDA) & (t->device_index == device_index);
}

/* The group is valid and needs an entry: non-empty, every tensor in its usual layout on the planner's device.
 * Sizes and ranks come first (one branch): past it, no size arithmetic can overflow and every index is in range. */
HOT int plain_group(const nvfp4_planner *p, const nvfp4_group_input *g) {
    if (!((g->m >= 1) & (g->m <= INT32_MAX) & (g->n >= 1) & (g->n <= INT32_MAX) & (g->k >= 1) & (g->k <= INT32_MAX) &
          (g->k % NVFP4_K_ALIGN == 0) & (g->l >= 1) & (g->l <= INT32_MAX) & (g->a.ndim == 3) & (g->b.ndim == 3) &
          (g->c.ndim == 3) & (g->sfa.ndim == 6) & (g->sfb.ndim == 6)))
        return 0;
    const int32_t device = p->device_index;
    return plain_operand(&g->a, g->m, g->k, g->l) & plain_operand(&g->b, g->n, g->k, g->l) &
           plain_output(&g->c, g->m, g->n, g->l) & plain_scales(&g->sfa, g->m, g->k, g->l) &
           plain_scales(&g->sfb, g->n, g->k, g->l) & on_device(&g->a, device) & on_device(&g->b, device) &
           on_device(&g->c, device) & on_device(&g->sfa, device) & on_device(&g->sfb, device) &
           (p->device_status == NVFP4_OK);
}

/* Counts the group's tiles into the plan and writes its entry; fails only past INT32_MAX tiles. */
HOT nvfp4_status add_entry(nvfp4_planner *p, const nvfp4_group_input *g, int32_t i, nvfp4_error *error) {
    int64_t group_tiles = ceil_div(g->m, NVFP4_TILE_M) * ceil_div(g->n, NVFP4_TILE_N) * g->l;
    if (p->tiles + group_tiles > INT32_MAX)
        return fail(error, NVFP4_VALUE_ERROR, (field_ref){"problem_sizes[%d]", i},
                    "the call needs more than %d output tiles of %dx%d; split it into several calls", INT32_MAX,
                    NVFP4_TILE_M, NVFP4_TILE_N);
    fill_entry(g, (int32_t)p->tiles, &p->entries[p->count++]);
    p->tiles += group_tiles;
    return NVFP4_OK;
}

/* Every rule, one at a time: for the groups the fast pass leaves, and for wording the first violation. */
static __attribute__((noinline)) nvfp4_status add_checked(nvfp4_planner *p, const nvfp4_group_input *g, int32_t i,
                                                          nvfp4_error *error) {
    nvfp4_status s;
    if ((s = check_sizes(g, (field_ref){"problem_sizes[%d]", i}, error))) return s;
    if ((s = check_operand(&g->a, (field_ref){"abc[%d].a", i}, "[M, K/2, L]", g->m, g->k, g->l, error))) return s;
    if ((s = check_operand(&g->b, (field_ref){"abc[%d].b", i}, "[N, K/2, L]", g->n, g->k, g->l, error))) return s;
    if ((s = check_output(&g->c, (field_ref){"abc[%d].c", i}, g->m, g->n, g->l, error))) return s;
    if ((s = check_scales(&g->sfa, (field_ref){"sfasfb_reordered[%d].sfa", i}, g->m, g->k, g->l, error))) return s;
    if ((s = check_scales(&g->sfb, (field_ref){"sfasfb_reordered[%d].sfb", i}, g->n, g->k, g->l, error))) return s;
    if (p->device_status == NVFP4_OK) p->device_status = check_group_devices(p, g, i, &p->device_error);
    if (g->m == 0) return NVFP4_OK;
    return add_entry(p, g, i, error);
}

nvfp4_status nvfp4_planner_add(nvfp4_planner *p, const nvfp4_group_input *g, nvfp4_error *error) {
    const int32_t i = p->groups++;
    if (i == 0) p->device_index = g->a.device_index; /* every tensor's device */
    return plain_group(p, g) ? add_entry(p, g, i, error) : add_checked(p, g, i, error);
}

nvfp4_status nvfp4_planner_finish(nvfp4_planner *p, nvfp4_plan *plan, nvfp4_error *error) {
    memset(plan, 0, sizeof *plan);
    if (p->groups < 1)
        return fail(error, NVFP4_VALUE_ERROR, (field_ref){"abc", 0}, "expected at least one group, got none");
    if (p->device_status != NVFP4_OK) {
        *error = p->device_error;
        return p->device_status;
    }
    plan->num_entries = p->count;
    plan->total_tiles = (int32_t)p->tiles;
    plan->device_index = p->device_index;
    return NVFP4_OK;
}
