/* Unit tests of the planner (csrc/planner.c), pure C. Built and run by tests/test_planner_c.py.
 * Prints one line per failed check and closes with "N passed, N failed"; exits non-zero on failure. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "planner.h"


/* Descriptors point at their sizes and strides (as the bridge points into torch's metadata); here the
 * arrays live in a pool that outlives every test, so descriptors can be copied freely. Breakers write
 * through MUT to change one dimension. */
static int64_t dims_pool[1 << 16];
static size_t dims_used;
#define MUT(dims) ((int64_t *)(dims))

static const int64_t *keep(const int64_t *values, int32_t n) {
    int64_t *kept = &dims_pool[dims_used];
    dims_used += (size_t)n;
    memcpy(kept, values, sizeof(int64_t) * (size_t)n);
    return kept;
}

static nvfp4_tensor_desc tensor(nvfp4_dtype dtype, uintptr_t data, int32_t ndim, const int64_t *sizes,
                                const int64_t *strides) {
    nvfp4_tensor_desc t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.dtype_name = dtype == NVFP4_DTYPE_FLOAT16 ? "torch.float16" : "torch.other";
    t.device_type = NVFP4_DEVICE_CUDA;
    t.device_type_name = "cuda";
    t.ndim = ndim;
    t.sizes = keep(sizes, ndim);
    t.strides = keep(strides, ndim);
    return t;
}

/* Blocked scales as the leaderboard builds them: a permuted view of a contiguous
 * (L, rest_mn, rest_k, 32, 4, 4) buffer. */
static nvfp4_tensor_desc blocked_scales(int64_t rows, int64_t k, int64_t l, uintptr_t data) {
    int64_t rest_mn = nvfp4_scale_rowblocks(rows), rest_k = nvfp4_scale_kblocks(k);
    const int64_t sizes[6] = {32, 4, rest_mn, 4, rest_k, l};
    const int64_t strides[6] = {16, 4, rest_k * 512, 1, 512, rest_mn * rest_k * 512};
    return tensor(NVFP4_DTYPE_FP8_E4M3FN, data, 6, sizes, strides);
}

/* A valid group in the leaderboard's layout; addresses are distinct and 256-byte aligned. */
static nvfp4_group_input make_group(int64_t m, int64_t n, int64_t k, int64_t l, uintptr_t base) {
    nvfp4_group_input g;
    memset(&g, 0, sizeof g);
    g.m = m, g.n = n, g.k = k, g.l = l;
    const int64_t a_sizes[3] = {m, k / 2, l}, a_strides[3] = {k / 2, 1, m * k / 2};
    const int64_t b_sizes[3] = {n, k / 2, l}, b_strides[3] = {k / 2, 1, n * k / 2};
    const int64_t c_sizes[3] = {m, n, l}, c_strides[3] = {n, 1, m * n};
    g.a = tensor(NVFP4_DTYPE_FP4X2, base + 0x100000, 3, a_sizes, a_strides);
    g.b = tensor(NVFP4_DTYPE_FP4X2, base + 0x200000, 3, b_sizes, b_strides);
    g.c = tensor(NVFP4_DTYPE_FLOAT16, base + 0x300000, 3, c_sizes, c_strides);
    g.sfa = blocked_scales(m, k, l, base + 0x400000);
    g.sfb = blocked_scales(n, k, l, base + 0x500000);
    return g;
}


/* A whole call through the streaming planner, as the module drives it. */
static nvfp4_status plan(const nvfp4_group_input *groups, int32_t count, nvfp4_group_entry *entries, nvfp4_plan *p,
                         nvfp4_error *error) {
    nvfp4_planner planner;
    nvfp4_status s;
    nvfp4_planner_start(&planner, entries);
    for (int32_t i = 0; i < count; i++)
        if ((s = nvfp4_planner_add(&planner, &groups[i], error))) return s;
    return nvfp4_planner_finish(&planner, p, error);
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void test_single_group_entry(void) {
    nvfp4_group_input g = make_group(96, 256, 512, 1, 0x10000000);
    nvfp4_group_entry e[1];
    nvfp4_plan p;
    nvfp4_error err;
    CHECK(plan(&g, 1, e, &p, &err) == NVFP4_OK);
    CHECK(p.num_entries == 1);
    CHECK(p.total_tiles == 2 * 2);
    CHECK(p.device_index == 0);
    CHECK(e[0].a == (const uint8_t *)(uintptr_t)0x10100000 && e[0].c == (uint8_t *)(uintptr_t)0x10300000);
    CHECK(e[0].m == 96 && e[0].n == 256 && e[0].k == 512 && e[0].l == 1);
    CHECK(e[0].a_row_stride == 256 && e[0].b_row_stride == 256 && e[0].c_row_stride == 512);
    CHECK(e[0].sfa_kblock_stride == 512 && e[0].sfa_rowblock_stride == 0); /* one row block: stride unused */
    CHECK(e[0].sfb_rowblock_stride == 8 * 512 && e[0].sfb_kblock_stride == 512);
    CHECK(e[0].a_batch_stride == 0 && e[0].c_batch_stride == 0); /* L == 1 */
    CHECK(e[0].tile_start == 0);
}

static void test_tiles_and_empty_groups(void) {
    nvfp4_group_input g[4] = {make_group(0, 64, 64, 1, 0x10000000), make_group(129, 300, 128, 2, 0x20000000),
                              make_group(0, 8, 64, 3, 0x30000000), make_group(1, 1, 64, 1, 0x40000000)};
    nvfp4_group_entry e[4];
    nvfp4_plan p;
    nvfp4_error err;
    CHECK(plan(g, 4, e, &p, &err) == NVFP4_OK);
    CHECK(p.num_entries == 2);
    CHECK(e[0].m == 129 && e[0].tile_start == 0);
    CHECK(e[1].m == 1 && e[1].tile_start == 3 * 3 * 2);
    CHECK(p.total_tiles == 3 * 3 * 2 + 1);
    CHECK(e[0].a_batch_stride == 129 * 64 && e[0].c_batch_stride == 2 * 129 * 300);
    CHECK(e[0].sfa_batch_stride == 2 * 2 * 512 && e[0].sfa_rowblock_stride == 2 * 512);
}

static void test_all_groups_empty(void) {
    nvfp4_group_input g[2] = {make_group(0, 64, 64, 1, 0x10000000), make_group(0, 32, 128, 1, 0x20000000)};
    nvfp4_group_entry e[2];
    nvfp4_plan p;
    nvfp4_error err;
    CHECK(plan(g, 2, e, &p, &err) == NVFP4_OK);
    CHECK(p.num_entries == 0 && p.total_tiles == 0);
}

static void test_no_groups(void) {
    nvfp4_plan p;
    nvfp4_error err;
    CHECK(plan(NULL, 0, NULL, &p, &err) == NVFP4_VALUE_ERROR && starts_with(err.message, "abc: "));
}

/* One broken field in group 1 of 2: the status and the message's field prefix. */
typedef void (*breaker)(nvfp4_group_input *g);

static void expect_error(breaker brk, nvfp4_status status, const char *prefix, const char *contains, int line) {
    nvfp4_group_input g[2] = {make_group(64, 128, 256, 1, 0x10000000), make_group(100, 72, 320, 2, 0x20000000)};
    nvfp4_group_entry e[2];
    nvfp4_plan p;
    nvfp4_error err = {{0}};
    brk(&g[1]);
    nvfp4_status got = plan(g, 2, e, &p, &err);
    int ok = got == status && starts_with(err.message, prefix) && (!contains || strstr(err.message, contains));
    if (ok) passed++;
    else {
        failed++;
        printf("FAIL line %d: status %d (want %d), message \"%s\" (want prefix \"%s\", containing \"%s\")\n", line, got,
               status, err.message, prefix, contains ? contains : "");
    }
}

static void k_not_multiple(nvfp4_group_input *g) { g->k = 96; }
static void m_negative(nvfp4_group_input *g) { g->m = -1; }
static void n_zero(nvfp4_group_input *g) { g->n = 0; }
static void l_zero(nvfp4_group_input *g) { g->l = 0; }
static void a_dtype(nvfp4_group_input *g) { g->a.dtype = NVFP4_DTYPE_FLOAT16, g->a.dtype_name = "torch.float16"; }
static void a_uint8(nvfp4_group_input *g) { g->a.dtype = NVFP4_DTYPE_UINT8; g->a.device_type = NVFP4_DEVICE_CPU; g->a.device_type_name = "cpu"; }
static void b_shape(nvfp4_group_input *g) { MUT(g->b.sizes)[1] = 80; }
static void b_ndim(nvfp4_group_input *g) { g->b.ndim = 2; }
static void m_disagrees(nvfp4_group_input *g) { g->m = 99; }
static void a_not_k_contiguous(nvfp4_group_input *g) { MUT(g->a.strides)[1] = 2; }
static void a_row_stride_odd(nvfp4_group_input *g) { MUT(g->a.strides)[0] = 168; }
static void b_batch_stride_odd(nvfp4_group_input *g) { MUT(g->b.strides)[2] = 8; }
static void a_unaligned(nvfp4_group_input *g) { g->a.data += 8; }
static void c_dtype(nvfp4_group_input *g) { g->c.dtype = NVFP4_DTYPE_OTHER, g->c.dtype_name = "torch.float32"; }
static void c_not_n_contiguous(nvfp4_group_input *g) { MUT(g->c.strides)[1] = 2; }
static void c_rows_overlap(nvfp4_group_input *g) { MUT(g->c.strides)[0] = 71; }
static void c_slices_overlap(nvfp4_group_input *g) { MUT(g->c.strides)[2] = 72; }
static void c_broadcast(nvfp4_group_input *g) { MUT(g->c.strides)[0] = 0; }
static void c_unaligned(nvfp4_group_input *g) { g->c.data += 2; }
static void sfa_dtype(nvfp4_group_input *g) { g->sfa.dtype = NVFP4_DTYPE_UINT8, g->sfa.dtype_name = "torch.uint8"; }
static void sfa_too_few_rowblocks(nvfp4_group_input *g) { g->sfb = blocked_scales(72, 320, 2, g->sfb.data); g->n = 129; MUT(g->b.sizes)[0] = 129; MUT(g->c.sizes)[1] = 129; MUT(g->c.strides)[0] = 129; MUT(g->c.strides)[2] = 100 * 129; }
static void sfb_too_few_kblocks(nvfp4_group_input *g) { MUT(g->sfb.sizes)[4] = 4; }
static void sfb_too_few_slices(nvfp4_group_input *g) { MUT(g->sfb.sizes)[5] = 1; }
static void sfa_atom_strides(nvfp4_group_input *g) { MUT(g->sfa.strides)[0] = 4, MUT(g->sfa.strides)[1] = 128; }
static void sfa_kblock_stride_odd(nvfp4_group_input *g) { MUT(g->sfa.strides)[4] = 520; }
static void sfb_unaligned(nvfp4_group_input *g) { g->sfb.data += 4; }
static void b_on_cpu(nvfp4_group_input *g) { g->b.device_type = NVFP4_DEVICE_CPU, g->b.device_type_name = "cpu"; }
static void c_other_gpu(nvfp4_group_input *g) { g->c.device_index = 1; }

static void test_errors(void) {
    expect_error(k_not_multiple, NVFP4_VALUE_ERROR, "problem_sizes[1]: ", "multiple of 64", __LINE__);
    expect_error(m_negative, NVFP4_VALUE_ERROR, "problem_sizes[1]: ", "(-1, 72, 320, 2)", __LINE__);
    expect_error(n_zero, NVFP4_VALUE_ERROR, "problem_sizes[1]: ", "N >= 1", __LINE__);
    expect_error(l_zero, NVFP4_VALUE_ERROR, "problem_sizes[1]: ", "L >= 1", __LINE__);
    expect_error(a_dtype, NVFP4_TYPE_ERROR, "abc[1].a: ", "got torch.float16", __LINE__);
    expect_error(a_uint8, NVFP4_VALUE_ERROR, "abc[1].a: ", "expected a CUDA tensor, got a tensor on cpu", __LINE__);
    expect_error(b_shape, NVFP4_VALUE_ERROR, "abc[1].b: ", "[72, 160, 2], got [72, 80, 2]", __LINE__);
    expect_error(b_ndim, NVFP4_VALUE_ERROR, "abc[1].b: ", "got [72, 160]", __LINE__);
    expect_error(m_disagrees, NVFP4_VALUE_ERROR, "abc[1].a: ", "[99, 160, 2], got [100, 160, 2]", __LINE__);
    expect_error(a_not_k_contiguous, NVFP4_VALUE_ERROR, "abc[1].a: ", "K-contiguous", __LINE__);
    expect_error(a_row_stride_odd, NVFP4_VALUE_ERROR, "abc[1].a: ", "multiple of 16 bytes, got 168", __LINE__);
    expect_error(b_batch_stride_odd, NVFP4_VALUE_ERROR, "abc[1].b: ", "dimension 2 (L)", __LINE__);
    expect_error(a_unaligned, NVFP4_VALUE_ERROR, "abc[1].a: ", "aligned to 16 bytes, got 0x20100008", __LINE__);
    expect_error(c_dtype, NVFP4_TYPE_ERROR, "abc[1].c: ", "expected dtype torch.float16, got torch.float32", __LINE__);
    expect_error(c_not_n_contiguous, NVFP4_VALUE_ERROR, "abc[1].c: ", "N-contiguous", __LINE__);
    expect_error(c_rows_overlap, NVFP4_VALUE_ERROR, "abc[1].c: ", "do not overlap", __LINE__);
    expect_error(c_slices_overlap, NVFP4_VALUE_ERROR, "abc[1].c: ", "do not overlap", __LINE__);
    expect_error(c_broadcast, NVFP4_VALUE_ERROR, "abc[1].c: ", "do not overlap", __LINE__);
    expect_error(c_unaligned, NVFP4_VALUE_ERROR, "abc[1].c: ", "aligned to 16 bytes", __LINE__);
    expect_error(sfa_dtype, NVFP4_TYPE_ERROR, "sfasfb_reordered[1].sfa: ", "float8_e4m3fn, got torch.uint8", __LINE__);
    expect_error(sfa_too_few_rowblocks, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfb: ", "for 129 rows", __LINE__);
    expect_error(sfb_too_few_kblocks, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfb: ", "K = 320", __LINE__);
    expect_error(sfb_too_few_slices, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfb: ", "[32, 4, 1, 4, 5, 2]", __LINE__);
    expect_error(sfa_atom_strides, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfa: ", "512-byte scale atoms", __LINE__);
    expect_error(sfa_kblock_stride_odd, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfa: ", "64-K blocks", __LINE__);
    expect_error(sfb_unaligned, NVFP4_VALUE_ERROR, "sfasfb_reordered[1].sfb: ", "aligned", __LINE__);
    expect_error(b_on_cpu, NVFP4_VALUE_ERROR, "abc[1].b: ", "got a tensor on cpu", __LINE__);
    expect_error(c_other_gpu, NVFP4_VALUE_ERROR, "abc[1].c: ", "cuda:0 (the device of abc[0].a), got cuda:1", __LINE__);
}

/* Structural errors win over device errors, whichever group they are in. */
static void test_device_checked_last(void) {
    nvfp4_group_input g[2] = {make_group(64, 128, 256, 1, 0x10000000), make_group(100, 72, 320, 1, 0x20000000)};
    nvfp4_group_entry e[2];
    nvfp4_plan p;
    nvfp4_error err;
    g[0].a.device_type = NVFP4_DEVICE_CPU, g[0].a.device_type_name = "cpu";
    g[1].k = 96;
    CHECK(plan(g, 2, e, &p, &err) == NVFP4_VALUE_ERROR && starts_with(err.message, "problem_sizes[1]: "));
}

/* Accepted variations: larger blocked scales, padded rows, L-major outputs, broadcast operands. */
static void test_accepted_layouts(void) {
    nvfp4_group_input g = make_group(100, 72, 320, 2, 0x10000000);
    nvfp4_group_entry e[1];
    nvfp4_plan p;
    nvfp4_error err;
    g.sfa = blocked_scales(300, 640, 3, g.sfa.data); /* more row blocks, K blocks and slices than needed */
    MUT(g.a.strides)[0] = 192, MUT(g.a.strides)[2] = 192 * 100; /* rows padded to 192 bytes */
    MUT(g.c.strides)[0] = 72 * 2, MUT(g.c.strides)[2] = 72;     /* slices interleaved between rows */
    MUT(g.b.strides)[2] = 0;                               /* one b shared by both slices */
    CHECK(plan(&g, 1, e, &p, &err) == NVFP4_OK);
    CHECK(e[0].a_row_stride == 192 && e[0].c_row_stride == 72 * 2 * 2 && e[0].c_batch_stride == 72 * 2);
    CHECK(e[0].sfa_rowblock_stride == 10 * 512 && e[0].sfa_batch_stride == 3 * 10 * 512);
    CHECK(e[0].b_batch_stride == 0);
}

/* The fast pass (leaderboard layouts) and the rule-by-rule checks (everything else) write the same entry: a
 * single-row a whose row stride is not a 16-byte multiple is valid (the stride is never stepped) but only the
 * detailed checks accept it; the same group with a plain stride takes the fast pass. Together with the groups
 * of test_errors, every one of which the fast pass must refuse, this pins both paths to the same rules. */
static void test_fast_and_checked_paths_agree(void) {
    nvfp4_group_input plain[2] = {make_group(64, 128, 256, 1, 0x10000000), make_group(1, 200, 320, 2, 0x20000000)};
    nvfp4_group_input odd[2] = {make_group(64, 128, 256, 1, 0x10000000), make_group(1, 200, 320, 2, 0x20000000)};
    nvfp4_group_entry plain_entries[2], odd_entries[2];
    nvfp4_plan plain_plan, odd_plan;
    nvfp4_error err;
    MUT(odd[1].a.strides)[0] = 8;
    CHECK(plan(plain, 2, plain_entries, &plain_plan, &err) == NVFP4_OK);
    CHECK(plan(odd, 2, odd_entries, &odd_plan, &err) == NVFP4_OK);
    CHECK(memcmp(&plain_plan, &odd_plan, sizeof plain_plan) == 0);
    CHECK(memcmp(plain_entries, odd_entries, sizeof plain_entries) == 0);
    CHECK(odd_entries[1].a_row_stride == 0 && odd_entries[1].tile_start == 1);
}

static void test_too_many_tiles(void) {
    nvfp4_group_input g = make_group(1 << 20, 1 << 20, 64, 1 << 10, 0x10000000);
    nvfp4_group_entry e[1];
    nvfp4_plan p;
    nvfp4_error err;
    /* The shapes are consistent, only the tile count is too large. */
    CHECK(plan(&g, 1, e, &p, &err) == NVFP4_VALUE_ERROR && strstr(err.message, "output tiles"));
}

int main(void) {
    test_single_group_entry();
    test_tiles_and_empty_groups();
    test_all_groups_empty();
    test_no_groups();
    test_errors();
    test_device_checked_last();
    test_accepted_layouts();
    test_fast_and_checked_paths_agree();
    test_too_many_tiles();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
