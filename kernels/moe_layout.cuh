// moe_layout.cuh: the layout of an MoE-layout call (grouped_mm), derived on the device from the expert end offsets,
// which only the device holds. One expert per thread of a CTA (or of one warp) whose threads cover the experts; the
// values an expert's layout depends on are prefix scans over the experts, in 32-bit counts, done in two rounds.
// Each round scans all of its values at once (their shuffle chains interleave, so a round costs about one scan's
// latency) and, with more than one warp, passes the warps' totals through shared memory behind one barrier:
//  1. the end of expert e: offsets[e] clamped into [0, tokens], then the running maximum, so that whatever the
//     offsets hold every expert's rows are a range inside a, in order (the start is the previous end);
//  2. everything else, all functions of the rows alone: the first row of its scale block in a_scale (the sum of
//     round_up(m_j, 128) over j < e: the layout of vLLM's blockscale_offsets and torchao's stacked quantizer), its
//     first portable-kernel tile, and for the stream-K kernel its chunks and padded rows under both chunk limits
//     and the largest chunk base. The experts share n and k, so the schedule's sums (cost, units, scratch) and the
//     chunk limit's tally are those counts' sums scaled by call-wide constants (hopper_counts_totals): the same
//     integers as summing each expert's shape. An expert whose scale block would run past a_scale's rows is given
//     no rows, so no read leaves the tensor; only such bad input runs the round again, with those rows removed.
// The table kernel (moe_table.cu) runs it once per call and writes the results to memory; the stream-K kernel's MoE
// pre-pass runs it in every block instead (one warp of it up to 32 experts), so that no table kernel stands between
// the call's start and its decode.
#pragma once

#include <stdint.h>

#include "group_table.h"
#include "hopper_schedule.h"
#include "launchers.h"

constexpr int MOE_WARP = 32;
constexpr unsigned MOE_FULL_MASK = 0xFFFFFFFFu;
// Round 2's values: the scale block's rows and the portable tiles' rows (sums), then per chunk limit the chunks and
// padded rows (sums), then per limit the chunk base (a maximum).
constexpr int MOE_SCALE_BLOCK = 0, MOE_TILE_ROWS = 1;
constexpr int MOE_CHUNKS = 2, MOE_PADDED = 2 + HOPPER_CHUNK_LIMITS, MOE_BASE = 2 + 2 * HOPPER_CHUNK_LIMITS;
constexpr int MOE_ROUND_VALUES = 2 + 3 * HOPPER_CHUNK_LIMITS;
constexpr unsigned MOE_BASE_MAX_MASK = ((1u << HOPPER_CHUNK_LIMITS) - 1) << MOE_BASE;

// Value i of a round is combined by maximum where bit i of MAX_MASK is set, else by sum. Every value is a
// non-negative count whose sum over the experts stays below 2^32 (T < 2^31 - 15 E, moe_args.c), so 0 is the
// identity of both.
template <unsigned MAX_MASK>
__device__ __forceinline__ uint32_t round_combine(int i, uint32_t a, uint32_t b) {
    return (MAX_MASK >> i) & 1u ? max(a, b) : a + b;
}

// One round's results at one thread: over the threads before it (exclusive; 0 at thread 0) and over all of them.
template <int N>
struct round_result {
    uint32_t exclusive[N], total[N];
};

// Shared memory for the warps' totals of a CTA of at most WARPS warps: rounds alternate between the two halves, so
// that a round's writes never meet the previous round's reads and one barrier per round suffices.
template <int WARPS>
struct round_totals {
    uint32_t half[2][MOE_ROUND_VALUES][WARPS];
};

// Scans of N values over the CTA's threads (a multiple of the warp), or over one warp where WARPS is 1 (then only
// that warp calls it and no barrier is met). Every caller's branch to it is uniform; round numbers count up from 0.
template <int N, unsigned MAX_MASK, int WARPS>
__device__ __forceinline__ round_result<N> block_round(const uint32_t (&value)[N], round_totals<WARPS> &shared,
                                                       int round) {
    const int lane = threadIdx.x % MOE_WARP, warp = threadIdx.x / MOE_WARP;
    const int warps = WARPS == 1 ? 1 : blockDim.x / MOE_WARP;
    uint32_t v[N];
#pragma unroll
    for (int i = 0; i < N; i++) v[i] = value[i];
#pragma unroll
    for (int step = 1; step < MOE_WARP; step *= 2) {
        uint32_t other[N];
#pragma unroll
        for (int i = 0; i < N; i++) other[i] = __shfl_up_sync(MOE_FULL_MASK, v[i], step);
        if (lane >= step) {
#pragma unroll
            for (int i = 0; i < N; i++) v[i] = round_combine<MAX_MASK>(i, v[i], other[i]);
        }
    }
    round_result<N> r;
#pragma unroll
    for (int i = 0; i < N; i++) r.exclusive[i] = 0;  // the warps before this one
    if (warps == 1) {
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = __shfl_sync(MOE_FULL_MASK, v[i], MOE_WARP - 1);
    } else {
        uint32_t (*totals)[WARPS] = shared.half[round & 1];
        if (lane == MOE_WARP - 1) {
#pragma unroll
            for (int i = 0; i < N; i++) totals[i][warp] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = 0;
        for (int w = 0; w < warps; w++) {
#pragma unroll
            for (int i = 0; i < N; i++) {
                const uint32_t t = totals[i][w];
                if (w < warp) r.exclusive[i] = round_combine<MAX_MASK>(i, r.exclusive[i], t);
                r.total[i] = round_combine<MAX_MASK>(i, r.total[i], t);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < N; i++) {
        const uint32_t previous = __shfl_up_sync(MOE_FULL_MASK, v[i], 1);
        if (lane > 0) r.exclusive[i] = round_combine<MAX_MASK>(i, r.exclusive[i], previous);
    }
    return r;
}

// Round 2's values for an expert of `rows` rows (the stream-K counts only where stream_k).
__device__ __forceinline__ void moe_row_values(uint32_t rows, bool stream_k, uint32_t (&value)[MOE_ROUND_VALUES]) {
    value[MOE_SCALE_BLOCK] = (rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    value[MOE_TILE_ROWS] = (rows + NVFP4_TILE_M - 1) / NVFP4_TILE_M;
#pragma unroll
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
        const hopper_row_counts c =
            stream_k ? hopper_row_counts_of((int32_t)rows, hopper_chunk_limit(i)) : hopper_row_counts{0, 0, 0};
        value[MOE_CHUNKS + i] = (uint32_t)c.chunks;
        value[MOE_PADDED + i] = (uint32_t)c.padded;
        value[MOE_BASE + i] = (uint32_t)c.base;
    }
}

// One expert's layout (a thread past the experts gets an empty one, which adds nothing to any sum).
struct moe_expert_layout {
    int64_t start, rows;   // its token rows in a (and in out)
    int64_t scale_row;     // the first row of its block in a_scale
    int64_t tile_start;    // its first portable-kernel tile
    // The stream-K kernel's (with stream_k only):
    hopper_problem problem;           // its problem under the call's chunk limit
    hopper_prefix before, total;      // the schedule's sums over the experts before it, and over all of them
    int32_t rows_before, rows_total;  // the pre-pass's padded token rows, the same way
};

// Every thread of the CTA calls it (e = threadIdx.x), or every thread of warp 0 where WARPS is 1 (up to 32 experts);
// stream_k is uniform. ctas: the stream-K kernel's grid, which the chunk limit's choice weighs.
template <int WARPS>
__device__ __forceinline__ moe_expert_layout derive_moe_layout(const nvfp4_moe_call &call, int32_t ctas, bool stream_k,
                                                               round_totals<WARPS> &shared) {
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    moe_expert_layout l;

    // Round 1: the experts' token ranges.
    int32_t end = expert ? call.offsets[e] : 0;
    end = end < 0 ? 0 : (end > call.tokens ? call.tokens : end);
    const round_result<1> ends = block_round<1, 1u>({(uint32_t)end}, shared, 0);
    l.start = ends.exclusive[0];
    uint32_t rows = expert ? (uint32_t)max(end, (int32_t)l.start) - (uint32_t)l.start : 0;

    // Round 2: the scale blocks, the portable tiles and the stream-K counts.
    uint32_t value[MOE_ROUND_VALUES];
    moe_row_values(rows, stream_k, value);
    round_result<MOE_ROUND_VALUES> sums = block_round<MOE_ROUND_VALUES, MOE_BASE_MAX_MASK>(value, shared, 1);
    l.scale_row = sums.exclusive[MOE_SCALE_BLOCK];
    if (sums.total[MOE_SCALE_BLOCK] > (uint32_t)call.scale_rows) {  // uniform; only when a_scale is too short
        if (l.scale_row + value[MOE_SCALE_BLOCK] > call.scale_rows) rows = 0;
        moe_row_values(rows, stream_k, value);
        sums = block_round<MOE_ROUND_VALUES, MOE_BASE_MAX_MASK>(value, shared, 2);
    }
    l.rows = rows;
    const int64_t tiles_n = (call.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    l.tile_start = (int64_t)sums.exclusive[MOE_TILE_ROWS] * tiles_n;
    if (!stream_k) return l;

    hopper_chunk_tally total;
#pragma unroll
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++)
        hopper_chunk_tally_set_counts(&total, i, call.n, call.k, sums.total[MOE_CHUNKS + i],
                                      sums.total[MOE_PADDED + i], (int32_t)sums.total[MOE_BASE + i]);
    const int32_t chunk_rows = hopper_chunk_tally_choice(&total, ctas);
    static_assert(HOPPER_CHUNK_LIMITS == 2, "the chosen limit is one of two");
    // The chosen limit's counts, picked by selects (an index into the round's arrays would put them in memory).
    const bool wide = chunk_rows == hopper_chunk_limit(0);
    const uint32_t chunks_before = wide ? sums.exclusive[MOE_CHUNKS] : sums.exclusive[MOE_CHUNKS + 1];
    const uint32_t padded_before = wide ? sums.exclusive[MOE_PADDED] : sums.exclusive[MOE_PADDED + 1];
    const uint32_t chunks_total = wide ? sums.total[MOE_CHUNKS] : sums.total[MOE_CHUNKS + 1];
    const uint32_t padded_total = wide ? sums.total[MOE_PADDED] : sums.total[MOE_PADDED + 1];
    l.problem = hopper_problem{(int32_t)rows, call.n, call.k, 1, chunk_rows};
    l.before = hopper_counts_totals(call.n, call.k, chunks_before, padded_before);
    l.total = hopper_counts_totals(call.n, call.k, chunks_total, padded_total);
    l.rows_before = (int32_t)padded_before;
    l.rows_total = (int32_t)padded_total;
    return l;
}

// Expert e's group-table entry: its rows of a and out, its weights and their scales.
__device__ __forceinline__ nvfp4_group_entry moe_group_entry(const nvfp4_moe_call &call, int e,
                                                             const moe_expert_layout &l) {
    const int64_t row_bytes = call.k / 2, scale_cols = call.k / NVFP4_SF_VEC;
    const int64_t n_padded = (call.n + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    const int32_t rowblock_stride = (int32_t)(call.k / NVFP4_K_ALIGN * NVFP4_SF_ATOM_BYTES);
    nvfp4_group_entry g;
    g.a = call.a + l.start * row_bytes;
    g.b = call.b + (int64_t)e * call.n * row_bytes;
    g.sfa = call.a_scale + l.scale_row * scale_cols;
    g.sfb = call.b_scale + (int64_t)e * n_padded * scale_cols;
    g.c = call.out + l.start * call.n * 2;
    g.a_batch_stride = g.b_batch_stride = g.c_batch_stride = g.sfa_batch_stride = g.sfb_batch_stride = 0;
    g.m = (int32_t)l.rows, g.n = call.n, g.k = call.k, g.l = 1;
    g.a_row_stride = g.b_row_stride = (int32_t)row_bytes;
    g.c_row_stride = call.n * 2;
    g.sfa_rowblock_stride = g.sfb_rowblock_stride = rowblock_stride;
    g.sfa_kblock_stride = g.sfb_kblock_stride = NVFP4_SF_ATOM_BYTES;
    g.tile_start = (int32_t)l.tile_start;
    return g;
}
