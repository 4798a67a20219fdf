/* hopper_schedule.h: the work schedule of the persistent Hopper grouped-GEMM kernel: token chunks, units and a
 * stream-K split of the units' 64-K blocks over the CTAs.
 *
 * Header-only C11 that also compiles inside CUDA device code (NVFP4_HOST_DEVICE), so the host (planner, tests,
 * dev/schedule_report.c) and every CTA of the kernel run the same functions. Whatever decides a boundary is
 * 64-bit integer arithmetic on the problem sizes alone: no floating point, no allocation, no recursion, so every
 * CTA and the host get bit-identical answers. The report functions at the end are host-only and use doubles.
 *
 * Work. A problem is one group: l batch slices of c[m, n] = a[m, k] @ b[n, k]^T. Per slice its m token rows split
 * into chunks of at most chunk_rows rows (hopper_chunk_*; one limit per call, hopper_choose_chunk_rows), its n
 * weight rows into tiles of HOPPER_WEIGHT_ROWS. A unit is (problem, slice, weight tile, chunk); units are numbered
 * problem-major, then slice, then weight tile, then chunk, so the chunks that share a weight tile run back to back
 * and find it in L2.
 * A unit runs k / HOPPER_KBLOCK_K k-blocks, each with the wgmma width of its chunk (rows rounded up to 16).
 *
 * Cost. One k-block of a unit of width w costs hopper_kblock_cost(w) = w + HOPPER_COST_FIXED, in proportion to
 * the measured time of a k16 step; the schedule's total C is the sum over units of kblocks * cost.
 *
 * Stream-K. CTA q of P owns the cost range [q*C/P, (q+1)*C/P), mapped onto (unit, k-block) positions by
 * hopper_boundary, a monotone pure function of the cost: CTA q runs [boundary(q*C/P), boundary((q+1)*C/P)).
 * Neighbours evaluate the same boundary, so the ranges tile the whole schedule, in order, each position once.
 * A CTA's range may be empty, which takes a share of about one k-block or less (few units on many CTAs): it then
 * runs nothing and holds no piece.
 *
 * Pieces. A CTA's range cut at unit edges gives its pieces. The piece that holds a unit's k-block 0 is the unit's
 * first piece: its CTA finalizes the unit (adds the other pieces' fp32 partials to its accumulators and writes c).
 * Every other piece is a partial piece and writes its fp32 partial into the workspace slot of its own CTA.
 * At most one partial piece per CTA: every piece but the first of a range starts at a unit edge (k-block 0),
 * so it is a first piece; only the range's first piece can start inside a unit. Hence P workspace slots of
 * HOPPER_WORKSPACE_SLOT_BYTES suffice.
 * No deadlock, with all P CTAs resident: a partial piece is the first work of its CTA, done before that CTA waits
 * for anything, and the first piece of a split unit is the last piece of its CTA's range (the unit runs on past
 * the range's end), so a finalizer waits only after everything else it owns. The CTAs holding a unit's partial
 * pieces are listed by hopper_unit_partial_ctas.
 *
 * Use on the device: the per-problem prefix table (hopper_prefix, count + 1 entries) is the only precomputed
 * state. The host fills it with hopper_schedule_init, which also rejects sizes out of range; a kernel either gets
 * that table or builds it from the sizes alone: each thread computes hopper_problem_totals for some problems and a
 * block-wide exclusive scan sums them (the same integer sums, so the same table), then hopper_schedule_attach.
 * Every query after that is O(log count) (binary searches over the table) plus O(log P) for the finalizer's list.
 */
#ifndef NVFP4_HOPPER_SCHEDULE_H
#define NVFP4_HOPPER_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "group_table.h"

#define HOPPER_WEIGHT_ROWS 128          /* rows of b per unit: wgmma's m side */
/* Token rows per unit at most, hence the widest wgmma n the kernel runs. The kernel compiles one wgmma loop per
 * width (HOPPER_WIDTH_GRANULE, 2 * HOPPER_WIDTH_GRANULE, ..., HOPPER_CHUNK_MAX_ROWS), and ptxas serialises every
 * wgmma of a kernel that holds more than 16 such widths (warning C7512, "insufficient register resources";
 * measured: 16 widths compile fine, 20, 22, 24 and 32 do not): hence widths in steps of 16. 240, not wgmma's 256:
 * at 256 the consumers' k-loop spills (ptxas: 53 local loads and stores in it), at 240 none. A wide chunk decodes
 * each weight once for up to 240 tokens, where chunks of 128 decode it twice and pay each k-block's fixed work
 * twice. */
#define HOPPER_CHUNK_MAX_ROWS 240
/* The other chunk limit a call may take (hopper_choose_chunk_rows): where whole units of 240-row chunks leave the
 * busiest CTA far above an even share, chunks of <= 128 rows cut the widest unit and use more of the CTAs. */
#define HOPPER_CHUNK_NARROW_ROWS 128
#define HOPPER_WIDTH_GRANULE 16         /* wgmma n is a multiple of 8; 16 keeps the widths to 16 */
#define HOPPER_KBLOCK_K NVFP4_K_ALIGN   /* K per k-block, the stream-K granule: one column block of scale atoms */
#define HOPPER_SCRATCH_ROW_BYTES (HOPPER_KBLOCK_K * 2) /* one token row of one k-block in fp16 */
/* Each chunk's scratch is width * kblocks * 128 bytes with width a multiple of the granule, so every offset in the
 * scratch buffer is a multiple of 2048 bytes without padding: at least the 1024 of a 128-byte-swizzled tile. */
#define HOPPER_SCRATCH_ALIGN (HOPPER_WIDTH_GRANULE * HOPPER_SCRATCH_ROW_BYTES)
/* One CTA's fp32 partial of the widest unit: the stream-K workspace holds P of them. */
#define HOPPER_WORKSPACE_SLOT_BYTES (HOPPER_WEIGHT_ROWS * HOPPER_CHUNK_MAX_ROWS * 4)

/* A k16 step of a unit's 128 weight rows takes ~153 + 0.55 w clocks at width w <= 128 and ~235 + 0.65 (w - 128) up
 * to 240 (H200, dev/width_sweep.py: one unit per CTA over K = 8192): the consumers' instructions, not the tensor
 * cores, set the pace, and most of them do not depend on w. In proportion that is w + 280. A smaller fixed part
 * overloads the CTAs holding narrow units: with widths 64 and 128 in one call, max(w, 96) + 4 would put those
 * holding the 64-wide units ~12% behind. */
#define HOPPER_COST_FIXED 280
/* Boundaries avoid leaving a piece shorter than this at a unit's start or end: such a piece pays a unit's fixed
 * costs (pipeline fill, the partial's workspace round trip) for little work. */
#define HOPPER_MIN_PIECE_KBLOCKS 4
/* ... but a snap moves a boundary by at most 1/40 of a CTA's cost share C / P, so that the snaps at both ends of a
 * range add at most 5% to its CTA. Where a share is only ~53-62 k-blocks (benchmark spec 3), uncapped snaps of up
 * to 3 k-blocks would put the busiest CTA 6.8% over the mean (3.1% capped). */
#define HOPPER_SNAP_SHARE_DIVISOR 40

/* One group: l batch slices of m token rows, n weight rows, k (a multiple of HOPPER_KBLOCK_K, at least one
 * k-block); nvfp4_group_entry's m, n, k, l. chunk_rows, the call's chunk limit, is HOPPER_CHUNK_MAX_ROWS or
 * HOPPER_CHUNK_NARROW_ROWS, the same for every problem of a call. */
typedef struct hopper_problem {
    int32_t m, n, k, l;
    int32_t chunk_rows;
} hopper_problem;

/* ---- Token chunks: m rows split into hopper_chunks(m, limit) chunks of hopper_chunk_base(m, limit) rows (the
 * last shorter); limit, a multiple of the granule, is the call's chunk_rows. */

/* Fewest chunks of at most `limit` rows; 0 for m = 0. m + limit - 1 < 2^32: a 32-bit division. */
static inline NVFP4_HOST_DEVICE int32_t hopper_chunks(int32_t m, int32_t limit) {
    return (int32_t)(((uint32_t)m + (uint32_t)limit - 1) / (uint32_t)limit);
}

static inline NVFP4_HOST_DEVICE int32_t hopper_round_width(int64_t rows) {
    return (int32_t)((rows + HOPPER_WIDTH_GRANULE - 1) / HOPPER_WIDTH_GRANULE * HOPPER_WIDTH_GRANULE);
}

/* Rows of every chunk but the last: an even split rounded up to a width, so that only the last chunk can be
 * padded. At most `limit` (a multiple of the granule); the last chunk is never empty, since
 * (chunks - 1) * limit < m. */
static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_base(int32_t m, int32_t limit) {
    /* 32-bit unsigned (m + chunks - 1 < 2^32): a GPU divides those inline, 64-bit ones through a subroutine. */
    const uint32_t chunks = (uint32_t)hopper_chunks(m, limit);
    return chunks == 0 ? 0 : hopper_round_width(((uint32_t)m + chunks - 1) / chunks);
}

static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_first_row(int32_t m, int32_t limit, int32_t c) {
    return (int32_t)((int64_t)c * hopper_chunk_base(m, limit));
}

/* Token rows of chunk c: [c * base, min(m, (c + 1) * base)). */
static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_rows(int32_t m, int32_t limit, int32_t c) {
    const int64_t base = hopper_chunk_base(m, limit), begin = (int64_t)c * base;
    const int64_t end = begin + base < m ? begin + base : m;
    return (int32_t)(end - begin);
}

/* The wgmma width chunk c runs: its rows rounded up to the granule. */
static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_width(int32_t m, int32_t limit, int32_t c) {
    return hopper_round_width(hopper_chunk_rows(m, limit, c));
}

/* Modelled clocks of one k-block of a unit of this width. */
static inline NVFP4_HOST_DEVICE int64_t hopper_kblock_cost(int32_t width) {
    return (int64_t)width + HOPPER_COST_FIXED;
}

/* ---- Per-problem shape and totals */

/* What the queries need of one problem, derived from its sizes. */
typedef struct hopper_shape {
    int32_t chunks, base, last_width; /* chunks before the last are `base` rows and wide */
    int32_t tiles, kblocks, slices;
    int64_t full_cost;   /* one unit of a base-wide chunk: kblocks * cost(base) */
    int64_t tile_cost;   /* every chunk of one weight tile */
    int64_t tile_width;  /* the chunks' widths summed */
    int64_t slice_cost;  /* every unit of one slice */
    int64_t slice_units;
    int64_t slice_scratch; /* bytes of one slice's chunks in the scratch buffer */
} hopper_shape;

/* a * b for a, b >= 0 through unsigned arithmetic: defined even where it would overflow, which only unvalidated
 * sizes can make it do (hopper_problem_fits rejects those before anything relies on the product). */
static inline NVFP4_HOST_DEVICE int64_t hopper_mul(int64_t a, int64_t b) {
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

static inline NVFP4_HOST_DEVICE hopper_shape hopper_problem_shape(const hopper_problem *p) {
    hopper_shape s;
    s.chunks = hopper_chunks(p->m, p->chunk_rows);
    s.base = hopper_chunk_base(p->m, p->chunk_rows);
    s.last_width = s.chunks == 0 ? 0 : hopper_chunk_width(p->m, p->chunk_rows, s.chunks - 1);
    s.tiles = (int32_t)(((int64_t)p->n + HOPPER_WEIGHT_ROWS - 1) / HOPPER_WEIGHT_ROWS);
    s.kblocks = p->k / HOPPER_KBLOCK_K;
    s.slices = p->l;
    /* These three fit for any int32 sizes: kblocks < 2^25, chunks <= 2^24, cost < 2^8, widths < 2^32. */
    s.full_cost = s.kblocks * hopper_kblock_cost(s.base);
    s.tile_cost = s.chunks == 0 ? 0 : (int64_t)(s.chunks - 1) * s.full_cost + s.kblocks * hopper_kblock_cost(s.last_width);
    s.tile_width = s.chunks == 0 ? 0 : (int64_t)(s.chunks - 1) * s.base + s.last_width;
    s.slice_cost = hopper_mul(s.tiles, s.tile_cost);
    s.slice_units = (int64_t)s.tiles * s.chunks;
    s.slice_scratch = hopper_mul(s.tile_width * s.kblocks, HOPPER_SCRATCH_ROW_BYTES);
    return s;
}

/* Sums over problems: one problem's own (hopper_problem_totals) or, in the prefix table, those before it. */
typedef struct hopper_prefix {
    int64_t cost;          /* modelled clocks */
    int64_t units;
    int64_t scratch_bytes; /* of the token pre-pass's fp16 scratch */
} hopper_prefix;

static inline NVFP4_HOST_DEVICE hopper_prefix hopper_problem_totals(const hopper_problem *p) {
    const hopper_shape s = hopper_problem_shape(p);
    hopper_prefix t;
    t.cost = hopper_mul(s.slices, s.slice_cost);
    t.units = hopper_mul(s.slices, s.slice_units);
    t.scratch_bytes = hopper_mul(s.slices, s.slice_scratch);
    return t;
}

/* a * b <= limit, for a, b >= 0, without computing an overflowing product. */
static inline NVFP4_HOST_DEVICE int hopper_product_within(int64_t a, int64_t b, int64_t limit) {
    return b == 0 || a <= limit / b;
}

/* Whether a problem is valid (m >= 0, n >= 1, l >= 1, k a positive multiple of HOPPER_KBLOCK_K) and its totals
 * fit: cost within cost_limit, units and scratch bytes within int64. */
static inline NVFP4_HOST_DEVICE int hopper_problem_fits(const hopper_problem *p, int64_t cost_limit) {
    if (p->m < 0 || p->n < 1 || p->l < 1 || p->k < HOPPER_KBLOCK_K || p->k % HOPPER_KBLOCK_K != 0) return 0;
    if (p->chunk_rows < HOPPER_WIDTH_GRANULE || p->chunk_rows > HOPPER_CHUNK_MAX_ROWS ||
        p->chunk_rows % HOPPER_WIDTH_GRANULE != 0)
        return 0;
    const hopper_shape s = hopper_problem_shape(p);
    return hopper_product_within(s.tiles, s.tile_cost, cost_limit) &&
           hopper_product_within(s.slices, s.slice_cost, cost_limit) &&
           hopper_product_within(s.slices, s.slice_units, INT64_MAX) &&
           hopper_product_within(s.tile_width * s.kblocks, HOPPER_SCRATCH_ROW_BYTES, INT64_MAX) &&
           hopper_product_within(s.slices, s.slice_scratch, INT64_MAX);
}

/* ---- The schedule */

/* Fixed-size handle on a call's schedule; problems and prefix stay owned by the caller (host memory, or the
 * kernel's parameters / shared / global memory on the device). */
typedef struct hopper_schedule {
    const hopper_problem *problems;
    const hopper_prefix *prefix; /* count + 1 entries: prefix[p] sums problems [0, p), prefix[count] all */
    int32_t count;
    int32_t ctas;                /* P, one persistent CTA per SM */
    int64_t total_cost, total_units, scratch_bytes;
    int64_t share;               /* C / P, what snaps are measured against */
} hopper_schedule;

/* A schedule over a prefix table that is already filled (by hopper_schedule_init, or by a block-wide scan of
 * hopper_problem_totals on the device); ctas >= 1. */
static inline NVFP4_HOST_DEVICE hopper_schedule hopper_schedule_attach(const hopper_problem *problems,
                                                                      const hopper_prefix *prefix, int32_t count,
                                                                      int32_t ctas) {
    hopper_schedule s;
    s.problems = problems;
    s.prefix = prefix;
    s.count = count;
    s.ctas = ctas;
    s.total_cost = prefix[count].cost;
    s.total_units = prefix[count].units;
    s.scratch_bytes = prefix[count].scratch_bytes;
    s.share = s.total_cost / ctas;
    return s;
}

/* Fills prefix (count + 1 entries) and *s. Returns 0, or -1 without touching *s where count < 0, ctas < 1, a
 * problem is invalid, or a total overflows: the cost must stay within INT64_MAX / ctas so that q * C never
 * overflows. Every later query assumes a schedule accepted here (or the same table built on the device). */
static inline NVFP4_HOST_DEVICE int hopper_schedule_init(hopper_schedule *s, const hopper_problem *problems,
                                                         hopper_prefix *prefix, int32_t count, int32_t ctas) {
    if (count < 0 || ctas < 1) return -1;
    const int64_t cost_limit = INT64_MAX / ctas;
    hopper_prefix sum;
    sum.cost = sum.units = sum.scratch_bytes = 0;
    for (int32_t p = 0; p < count; p++) {
        prefix[p] = sum;
        if (!hopper_problem_fits(&problems[p], cost_limit)) return -1;
        const hopper_prefix t = hopper_problem_totals(&problems[p]);
        if (t.cost > cost_limit - sum.cost || t.units > INT64_MAX - sum.units ||
            t.scratch_bytes > INT64_MAX - sum.scratch_bytes)
            return -1;
        sum.cost += t.cost;
        sum.units += t.units;
        sum.scratch_bytes += t.scratch_bytes;
    }
    prefix[count] = sum;
    *s = hopper_schedule_attach(problems, prefix, count, ctas);
    return 0;
}

/* ---- The tables of a schedule built once on the device (the MoE path's table kernel, kernels/moe_table.cu, where
 * only the device knows the sizes), for every pre-pass block to copy instead of recomputing: a header, then
 * prefix[count + 1] (hopper_schedule_init's), problems[count] (chunk_rows set) and row_prefix[count + 1] (padded
 * token rows of the problems before: slices x the chunks' widths). */
typedef struct hopper_device_tables {
    int32_t count;
    int32_t chunk_rows;  /* the call's chunk limit, hopper_choose_chunk_rows's choice */
    int32_t padded_rows; /* row_prefix[count]: the pre-pass's rows */
    int32_t unused;
} hopper_device_tables;

static inline NVFP4_HOST_DEVICE size_t hopper_device_tables_bytes(int32_t count) {
    return sizeof(hopper_device_tables) + sizeof(hopper_prefix) * ((size_t)count + 1) +
           sizeof(hopper_problem) * (size_t)count + sizeof(int32_t) * ((size_t)count + 1);
}
static inline NVFP4_HOST_DEVICE hopper_prefix *hopper_device_tables_prefix(hopper_device_tables *t) {
    return (hopper_prefix *)(t + 1); /* 16 bytes in: aligned for the int64 fields */
}
static inline NVFP4_HOST_DEVICE hopper_problem *hopper_device_tables_problems(hopper_device_tables *t) {
    return (hopper_problem *)(hopper_device_tables_prefix(t) + t->count + 1);
}
static inline NVFP4_HOST_DEVICE int32_t *hopper_device_tables_row_prefix(hopper_device_tables *t) {
    return (int32_t *)(hopper_device_tables_problems(t) + t->count);
}

/* ---- Token scratch: every chunk's tokens as fp16 [kblock][width rows][64 halves], chunks in unit order
 * (problem, slice, chunk), width * 128 bytes per k-block, contiguous. Weight tiles share their chunk's scratch. */

/* Byte offset of (problem, slice, chunk): a multiple of HOPPER_SCRATCH_ALIGN. Its k-block kb starts
 * kb * width * HOPPER_SCRATCH_ROW_BYTES further. The buffer's size is s->scratch_bytes. */
static inline NVFP4_HOST_DEVICE int64_t hopper_scratch_offset(const hopper_schedule *s, int32_t problem,
                                                              int32_t slice, int32_t chunk) {
    const hopper_shape sh = hopper_problem_shape(&s->problems[problem]);
    return s->prefix[problem].scratch_bytes + (int64_t)slice * sh.slice_scratch +
           (int64_t)chunk * sh.base * sh.kblocks * HOPPER_SCRATCH_ROW_BYTES;
}

/* ---- Units */

typedef struct hopper_unit {
    int64_t index;                      /* in unit order; s->total_units past the last unit */
    int32_t problem, slice, tile, chunk; /* past the last unit: problem = count, the rest 0 */
} hopper_unit;

static inline NVFP4_HOST_DEVICE hopper_unit hopper_unit_end(const hopper_schedule *s) {
    hopper_unit u;
    u.index = s->total_units;
    u.problem = s->count;
    u.slice = u.tile = u.chunk = 0;
    return u;
}

/* Last problem whose prefix value (cost when by_cost, else units) is <= v, for 0 <= v < the total. Problems
 * without units share their prefix with the next one, so the last match is the problem that holds v. */
static inline NVFP4_HOST_DEVICE int32_t hopper_find_problem(const hopper_schedule *s, int64_t v, int by_cost) {
    int32_t lo = 0, hi = s->count - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        const int64_t at = by_cost ? s->prefix[mid].cost : s->prefix[mid].units;
        if (at <= v) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Unit by index (0 <= index <= total_units). */
static inline NVFP4_HOST_DEVICE hopper_unit hopper_unit_at(const hopper_schedule *s, int64_t index) {
    if (index >= s->total_units) return hopper_unit_end(s);
    hopper_unit u;
    u.index = index;
    u.problem = hopper_find_problem(s, index, 0);
    const hopper_shape sh = hopper_problem_shape(&s->problems[u.problem]);
    const int64_t local = index - s->prefix[u.problem].units;
    u.slice = (int32_t)(local / sh.slice_units);
    const int64_t in_slice = local - u.slice * sh.slice_units;
    u.tile = (int32_t)(in_slice / sh.chunks);
    u.chunk = (int32_t)(in_slice - (int64_t)u.tile * sh.chunks);
    return u;
}

/* The unit after u (u before the end); steps within a problem without a search. */
static inline NVFP4_HOST_DEVICE hopper_unit hopper_unit_next(const hopper_schedule *s, hopper_unit u) {
    const hopper_shape sh = hopper_problem_shape(&s->problems[u.problem]);
    if (++u.chunk == sh.chunks) {
        u.chunk = 0;
        if (++u.tile == sh.tiles) {
            u.tile = 0;
            if (++u.slice == sh.slices) return hopper_unit_at(s, u.index + 1);
        }
    }
    u.index++;
    return u;
}

static inline NVFP4_HOST_DEVICE int32_t hopper_unit_kblocks(const hopper_schedule *s, hopper_unit u) {
    return s->problems[u.problem].k / HOPPER_KBLOCK_K;
}

static inline NVFP4_HOST_DEVICE int32_t hopper_unit_rows(const hopper_schedule *s, hopper_unit u) {
    return hopper_chunk_rows(s->problems[u.problem].m, s->problems[u.problem].chunk_rows, u.chunk);
}

static inline NVFP4_HOST_DEVICE int32_t hopper_unit_width(const hopper_schedule *s, hopper_unit u) {
    return hopper_chunk_width(s->problems[u.problem].m, s->problems[u.problem].chunk_rows, u.chunk);
}

/* ---- Positions and the stream-K boundaries */

/* (unit, k-block): the unit's k-block kb, 0 <= kb < kblocks; the end of the schedule is (hopper_unit_end, 0). */
typedef struct hopper_pos {
    hopper_unit unit;
    int32_t kb;
} hopper_pos;

/* Cost of everything before pos: strictly increasing along the unit order, as every k-block costs > 0. */
static inline NVFP4_HOST_DEVICE int64_t hopper_pos_cost(const hopper_schedule *s, hopper_pos pos) {
    if (pos.unit.index >= s->total_units) return s->total_cost;
    const hopper_shape sh = hopper_problem_shape(&s->problems[pos.unit.problem]);
    const int32_t width = pos.unit.chunk == sh.chunks - 1 ? sh.last_width : sh.base;
    return s->prefix[pos.unit.problem].cost + pos.unit.slice * sh.slice_cost + pos.unit.tile * sh.tile_cost +
           pos.unit.chunk * sh.full_cost + pos.kb * hopper_kblock_cost(width);
}

/* Moves a boundary at k-block kb of a unit (kblocks k-blocks of per_kblock each) to the nearer unit edge (ties to
 * the start) when it would leave fewer than HOPPER_MIN_PIECE_KBLOCKS k-blocks before or after it in the unit, unless
 * that moves more than a share / HOPPER_SNAP_SHARE_DIVISOR of cost. kb = kblocks is the next unit's start.
 * Monotone in kb (the k-blocks that snap form a prefix and a suffix of the unit), so boundaries stay ordered. */
static inline NVFP4_HOST_DEVICE hopper_pos hopper_snap(const hopper_schedule *s, hopper_unit u, int64_t kb,
                                                       int32_t kblocks, int64_t per_kblock) {
    hopper_pos pos;
    pos.unit = u;
    pos.kb = (int32_t)kb;
    const int to_end = 2 * kb > kblocks;
    const int64_t distance = to_end ? kblocks - kb : kb;
    const int short_piece = kb < HOPPER_MIN_PIECE_KBLOCKS || kblocks - kb < HOPPER_MIN_PIECE_KBLOCKS;
    if (distance == 0 ||
        (short_piece && distance * per_kblock * HOPPER_SNAP_SHARE_DIVISOR <= s->share)) {
        pos.kb = 0;
        if (to_end) pos.unit = hopper_unit_next(s, u);
    }
    return pos;
}

/* The first position whose cost prefix is >= x, snapped (hopper_snap). Pure and monotone in x. */
static inline NVFP4_HOST_DEVICE hopper_pos hopper_boundary(const hopper_schedule *s, int64_t x) {
    hopper_pos pos;
    if (x >= s->total_cost) {
        pos.unit = hopper_unit_end(s);
        pos.kb = 0;
        return pos;
    }
    hopper_unit u;
    u.problem = hopper_find_problem(s, x, 1);
    const hopper_shape sh = hopper_problem_shape(&s->problems[u.problem]);
    int64_t offset = x - s->prefix[u.problem].cost;
    u.slice = (int32_t)(offset / sh.slice_cost);
    offset -= u.slice * sh.slice_cost;
    u.tile = (int32_t)(offset / sh.tile_cost);
    offset -= u.tile * sh.tile_cost;
    /* Chunks before the last all cost full_cost; the last may cost less, so the quotient is capped. */
    const int64_t chunk = offset / sh.full_cost;
    u.chunk = chunk < sh.chunks - 1 ? (int32_t)chunk : sh.chunks - 1;
    offset -= u.chunk * sh.full_cost;
    u.index = s->prefix[u.problem].units + u.slice * sh.slice_units + (int64_t)u.tile * sh.chunks + u.chunk;
    const int64_t per_kblock = hopper_kblock_cost(u.chunk == sh.chunks - 1 ? sh.last_width : sh.base);
    return hopper_snap(s, u, (offset + per_kblock - 1) / per_kblock, sh.kblocks, per_kblock);
}

/* Whether each CTA should run one unit whole instead of a stream-K share of the cost: no more units than CTAs,
 * and the costliest unit at most 1.5 times an even share C / P. No unit is then split, so no partial is written,
 * waited for and added, and no CTA starts a second piece. Where every unit fits one CTA those costs outweigh the
 * balance stream-K adds even where the costliest unit is well above a share (H200, leaderboard-style harness, each
 * pair from two machine starts: benchmark spec 4, whose 192-wide units cost 1.44 shares, 27.5 us a call whole
 * against 33.0 split; spec 3 with chunks of at most 128 rows, 1.12 shares, 40.4 against 43.8). The kernel then
 * runs unit q on CTA q (q < units) and nothing on the others. Divisions only: nothing overflows for any P >= 1. */
static inline NVFP4_HOST_DEVICE int hopper_whole_units_fit(int64_t units, int64_t total_cost, int64_t max_unit_cost,
                                                         int32_t ctas) {
    const int64_t share = total_cost / ctas;
    return units <= ctas && max_unit_cost - share <= share / 2;
}

/* Modelled time of a call's longest CTA: its costliest unit where every CTA runs one whole unit
 * (hopper_whole_units_fit), else 1.5 even shares. The same weighing as hopper_whole_units_fit, which prefers
 * whole units up to 1.5 shares: a split schedule's pieces, partials and fixups cost about that much over the
 * share it balances. */
static inline NVFP4_HOST_DEVICE int64_t hopper_makespan_estimate(int64_t units, int64_t total_cost,
                                                               int64_t max_unit_cost, int32_t ctas) {
    const int64_t share = total_cost / ctas;
    return hopper_whole_units_fit(units, total_cost, max_unit_cost, ctas) ? max_unit_cost : share + share / 2;
}

/* The chunk limit for a call (every problem's chunk_rows; the field is ignored here): HOPPER_CHUNK_NARROW_ROWS
 * where its modelled makespan is lower, else HOPPER_CHUNK_MAX_ROWS. Wide chunks decode each weight for more
 * tokens and pay each k-block's fixed cost once, so they win wherever the work is split stream-K; narrow ones
 * win where whole units of wide chunks leave the busiest CTA far above a share (benchmark spec 4: 96 units of up
 * to 192 rows on 132 CTAs, 1.44 shares; with <= 128 rows, 128 units of 128, 1.03 shares).
 * The choice is a function of three sums over the problems, per limit (hopper_chunk_tally), so a block of GPU
 * threads can tally the problems with block-wide scans (moe_layout.cuh): the same integers as the host's
 * loop, the same choice. The sizes must pass hopper_problem_fits; sums wrap like hopper_mul, never trap. */
#define HOPPER_CHUNK_LIMITS 2
static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_limit(int i) {
    return i == 0 ? HOPPER_CHUNK_MAX_ROWS : HOPPER_CHUNK_NARROW_ROWS;
}

typedef struct hopper_chunk_tally {
    uint64_t units[HOPPER_CHUNK_LIMITS], cost[HOPPER_CHUNK_LIMITS];
    uint64_t widest[HOPPER_CHUNK_LIMITS]; /* the costliest unit: a maximum, not a sum */
} hopper_chunk_tally;

static inline NVFP4_HOST_DEVICE void hopper_chunk_tally_add(hopper_chunk_tally *tally, const hopper_problem *p) {
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
        hopper_problem problem = *p;
        problem.chunk_rows = hopper_chunk_limit(i);
        const hopper_prefix t = hopper_problem_totals(&problem);
        tally->units[i] += (uint64_t)t.units;
        tally->cost[i] += (uint64_t)t.cost;
        if (t.units > 0) { /* a unit's base-wide chunk is its widest */
            const uint64_t full_cost = (uint64_t)hopper_problem_shape(&problem).full_cost;
            if (full_cost > tally->widest[i]) tally->widest[i] = full_cost;
        }
    }
}

static inline NVFP4_HOST_DEVICE int32_t hopper_chunk_tally_choice(const hopper_chunk_tally *tally, int32_t ctas) {
    int64_t estimate[HOPPER_CHUNK_LIMITS];
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++)
        estimate[i] = hopper_makespan_estimate((int64_t)tally->units[i], (int64_t)tally->cost[i],
                                               (int64_t)tally->widest[i], ctas);
    return estimate[1] < estimate[0] ? HOPPER_CHUNK_NARROW_ROWS : HOPPER_CHUNK_MAX_ROWS;
}

/* Problems of at most HOPPER_CHUNK_NARROW_ROWS tokens chunk alike under both limits (equal estimates: the wide
 * limit), so calls without larger ones skip the tally. */
static inline NVFP4_HOST_DEVICE int32_t hopper_choose_chunk_rows(const hopper_problem *problems, int32_t count,
                                                                 int32_t ctas) {
    int any_large = 0;
    for (int32_t p = 0; p < count; p++) any_large |= problems[p].m > HOPPER_CHUNK_NARROW_ROWS;
    if (!any_large) return HOPPER_CHUNK_MAX_ROWS;
    hopper_chunk_tally tally = {{0, 0}, {0, 0}, {0, 0}};
    for (int32_t p = 0; p < count; p++) hopper_chunk_tally_add(&tally, &problems[p]);
    return hopper_chunk_tally_choice(&tally, ctas);
}

/* ---- Problems that share n and k, one slice each (an MoE call: one problem per expert, every expert's weights
 * the same shape). A problem's totals then factor into call-wide constants times two counts of its own, its chunks
 * and its padded rows (tile_width): with T = tiles and B = kblocks, tile_cost = B * (padded + HOPPER_COST_FIXED *
 * chunks), so cost = T * B * (padded + HOPPER_COST_FIXED * chunks), units = T * chunks, scratch = padded * B *
 * HOPPER_SCRATCH_ROW_BYTES, and its costliest unit B * cost(base). Sums over such problems (the prefix table, the
 * chunk tally) are then sums of 32-bit counts scaled once: the same integers as summing hopper_problem_totals. */
typedef struct hopper_row_counts {
    int32_t chunks, base, padded;
} hopper_row_counts;

static inline NVFP4_HOST_DEVICE hopper_row_counts hopper_row_counts_of(int32_t m, int32_t limit) {
    hopper_row_counts c;
    c.chunks = hopper_chunks(m, limit);
    c.base = hopper_chunk_base(m, limit);
    c.padded = c.chunks == 0 ? 0 : (c.chunks - 1) * c.base + hopper_round_width(m - (c.chunks - 1) * c.base);
    return c;
}

/* The totals of problems of n weight rows and depth k whose counts sum to `chunks` and `padded`. */
static inline NVFP4_HOST_DEVICE hopper_prefix hopper_counts_totals(int32_t n, int32_t k, int64_t chunks,
                                                                   int64_t padded) {
    const int64_t tiles = ((int64_t)n + HOPPER_WEIGHT_ROWS - 1) / HOPPER_WEIGHT_ROWS, kblocks = k / HOPPER_KBLOCK_K;
    hopper_prefix t;
    t.cost = hopper_mul(tiles * kblocks, padded + HOPPER_COST_FIXED * chunks);
    t.units = hopper_mul(tiles, chunks);
    t.scratch_bytes = hopper_mul(padded * kblocks, HOPPER_SCRATCH_ROW_BYTES);
    return t;
}

/* Limit i's part of the chunk tally of such problems: their counts under that limit summed, and the largest base
 * among them (a problem with no rows has base 0, so the maximum over all of them is the one over those with units). */
static inline NVFP4_HOST_DEVICE void hopper_chunk_tally_set_counts(hopper_chunk_tally *tally, int i, int32_t n,
                                                                   int32_t k, int64_t chunks, int64_t padded,
                                                                   int32_t widest_base) {
    const hopper_prefix t = hopper_counts_totals(n, k, chunks, padded);
    tally->units[i] = (uint64_t)t.units;
    tally->cost[i] = (uint64_t)t.cost;
    tally->widest[i] = t.units > 0 ? (uint64_t)((k / HOPPER_KBLOCK_K) * hopper_kblock_cost(widest_base)) : 0;
}

/* CTA q's share of the cost starts at q * C / P (q = P: the end). */
static inline NVFP4_HOST_DEVICE int64_t hopper_cta_cost_begin(const hopper_schedule *s, int32_t q) {
    return (int64_t)q * s->total_cost / s->ctas;
}

static inline NVFP4_HOST_DEVICE hopper_pos hopper_cta_begin(const hopper_schedule *s, int32_t q) {
    return hopper_boundary(s, hopper_cta_cost_begin(s, q));
}

static inline NVFP4_HOST_DEVICE hopper_pos hopper_cta_end(const hopper_schedule *s, int32_t q) {
    return hopper_boundary(s, hopper_cta_cost_begin(s, q + 1));
}

static inline NVFP4_HOST_DEVICE int hopper_pos_equal(hopper_pos a, hopper_pos b) {
    return a.unit.index == b.unit.index && a.kb == b.kb;
}

/* Whether CTA q runs nothing: its share is about one k-block or less, so both its ends fall on one position. */
static inline NVFP4_HOST_DEVICE int hopper_cta_is_empty(const hopper_schedule *s, int32_t q) {
    return hopper_pos_equal(hopper_cta_begin(s, q), hopper_cta_end(s, q));
}

/* The CTA whose range holds pos (a position before the end): the last q whose range begins at or before it.
 * Range starts are monotone in q and sit within a snap (at most a share / HOPPER_SNAP_SHARE_DIVISOR) of q * C / P,
 * so the CTA that owns pos's cost without snapping is at most one away: a step or two from there finds it, where
 * a binary search over P costs ~2 log2(P) boundary evaluations (each with 64-bit divisions, which the copier warp
 * runs for every split unit). target * P cannot overflow: init keeps C within INT64_MAX / P. */
static inline NVFP4_HOST_DEVICE int32_t hopper_cta_holding(const hopper_schedule *s, hopper_pos pos) {
    const int64_t target = hopper_pos_cost(s, pos);
    const int64_t estimate = target * s->ctas / s->total_cost;
    int32_t q = estimate < s->ctas - 1 ? (int32_t)estimate : s->ctas - 1;
    while (q > 0 && hopper_pos_cost(s, hopper_cta_begin(s, q)) > target) q--;
    while (q + 1 < s->ctas && hopper_pos_cost(s, hopper_cta_begin(s, q + 1)) <= target) q++;
    return q;
}

/* For the finalizer of unit u: its partial pieces are held by the non-empty CTAs among [*q_begin, *q_end), i.e.
 * (q_first, q_last] where q_first holds k-block 0 (the finalizer) and q_last the last k-block; empty when the unit
 * is complete in one piece. A CTA of that span can be empty (hopper_cta_is_empty) only when a CTA's cost share is
 * below one k-block of the unit (both its ends then fall on one k-block inside the unit); it holds no piece, and
 * the finalizer must skip it rather than wait for it. */
static inline NVFP4_HOST_DEVICE void hopper_unit_partial_ctas(const hopper_schedule *s, hopper_unit u,
                                                             int32_t *q_begin, int32_t *q_end) {
    hopper_pos pos;
    pos.unit = u;
    pos.kb = 0;
    *q_begin = hopper_cta_holding(s, pos) + 1;
    pos.kb = hopper_unit_kblocks(s, u) - 1;
    *q_end = hopper_cta_holding(s, pos) + 1;
}

/* ---- Walking a CTA's pieces:
 *     hopper_walk w = hopper_cta_walk(s, q); hopper_piece piece;
 *     while (hopper_walk_next(s, &w, &piece)) { ... } */

typedef struct hopper_piece {
    hopper_unit unit;
    int32_t kb_begin, kb_end; /* the k-blocks [kb_begin, kb_end) of the unit */
    int32_t kblocks;          /* the unit's */
    int32_t rows, width;      /* the chunk's token rows and wgmma width */
    int32_t is_first;         /* kb_begin == 0: this CTA finalizes the unit */
    int32_t is_complete;      /* the whole unit: no workspace traffic */
} hopper_piece;

typedef struct hopper_walk {
    hopper_pos at, end;
} hopper_walk;

static inline NVFP4_HOST_DEVICE hopper_walk hopper_cta_walk(const hopper_schedule *s, int32_t q) {
    hopper_walk w;
    w.at = hopper_cta_begin(s, q);
    w.end = hopper_cta_end(s, q);
    return w;
}

/* Fills *piece with the next piece and returns 1, or returns 0 at the end of the range. */
static inline NVFP4_HOST_DEVICE int hopper_walk_next(const hopper_schedule *s, hopper_walk *w, hopper_piece *piece) {
    if (w->at.unit.index > w->end.unit.index || (w->at.unit.index == w->end.unit.index && w->at.kb >= w->end.kb))
        return 0;
    const hopper_problem *p = &s->problems[w->at.unit.problem];
    piece->unit = w->at.unit;
    piece->kblocks = p->k / HOPPER_KBLOCK_K;
    piece->kb_begin = w->at.kb;
    piece->kb_end = w->at.unit.index == w->end.unit.index ? w->end.kb : piece->kblocks;
    piece->rows = hopper_chunk_rows(p->m, p->chunk_rows, w->at.unit.chunk);
    piece->width = hopper_round_width(piece->rows);
    piece->is_first = piece->kb_begin == 0;
    piece->is_complete = piece->is_first && piece->kb_end == piece->kblocks;
    w->at.unit = hopper_unit_next(s, w->at.unit);
    w->at.kb = 0;
    return 1;
}

/* ---- Host-only reports (doubles; nothing here decides a boundary) */

typedef struct hopper_report {
    int64_t pieces, partial_pieces, empty_ctas;
    double padding;      /* MMA work as run (chunk widths) over the real tokens' MMA work */
    double cost_balance; /* busiest CTA's modelled cost over the mean C / P */
    double mma_balance;  /* busiest CTA's MMA work (width x k-blocks over its pieces) over the mean */
    /* What the cost model allows mma_balance to reach: cost_balance x (the largest width / cost(width) of any unit)
     * / (all MMA work / all cost). Above 1 wherever units of different widths share a call: the schedule balances
     * modelled time, and a unit's time is not its MMA work (HOPPER_COST_FIXED). */
    double mma_balance_bound;
} hopper_report;

static inline double hopper_padding_ratio(const hopper_schedule *s) {
    double run = 0, real = 0;
    for (int32_t p = 0; p < s->count; p++) {
        const hopper_shape sh = hopper_problem_shape(&s->problems[p]);
        const double per_token = (double)sh.slices * sh.tiles * sh.kblocks;
        run += per_token * (double)sh.tile_width;
        real += per_token * s->problems[p].m;
    }
    return real > 0 ? run / real : 1.0;
}

static inline hopper_report hopper_schedule_report(const hopper_schedule *s) {
    hopper_report r;
    r.pieces = r.partial_pieces = r.empty_ctas = 0;
    double mma_total = 0, max_cost = 0, max_mma = 0;
    for (int32_t q = 0; q < s->ctas; q++) {
        hopper_walk w = hopper_cta_walk(s, q);
        hopper_piece piece;
        double cost = 0, mma = 0;
        r.empty_ctas += hopper_pos_equal(w.at, w.end);
        while (hopper_walk_next(s, &w, &piece)) {
            const int32_t kblocks = piece.kb_end - piece.kb_begin;
            cost += (double)kblocks * (double)hopper_kblock_cost(piece.width);
            mma += (double)kblocks * piece.width;
            r.pieces++;
            r.partial_pieces += !piece.is_first;
        }
        mma_total += mma;
        if (cost > max_cost) max_cost = cost;
        if (mma > max_mma) max_mma = mma;
    }
    double best_ratio = 0; /* most MMA work per unit of cost, over the units' widths */
    for (int32_t p = 0; p < s->count; p++) {
        const int32_t m = s->problems[p].m, limit = s->problems[p].chunk_rows, chunks = hopper_chunks(m, limit);
        for (int32_t c = chunks > 2 ? chunks - 2 : 0; c < chunks; c++) { /* chunks before the last share a width */
            const int32_t width = hopper_chunk_width(m, limit, c);
            const double ratio = width / (double)hopper_kblock_cost(width);
            if (ratio > best_ratio) best_ratio = ratio;
        }
    }
    r.padding = hopper_padding_ratio(s);
    r.cost_balance = s->total_cost > 0 ? max_cost * s->ctas / (double)s->total_cost : 1.0;
    r.mma_balance = mma_total > 0 ? max_mma * s->ctas / mma_total : 1.0;
    r.mma_balance_bound = mma_total > 0 ? r.cost_balance * best_ratio * (double)s->total_cost / mma_total : 1.0;
    return r;
}

#endif
