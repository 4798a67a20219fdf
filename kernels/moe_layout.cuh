// moe_layout.cuh: the layout of an MoE-layout call (grouped_mm), derived on the device from the expert end offsets,
// which only the device holds. One expert per thread of a CTA whose threads cover the experts; the values an
// expert's layout depends on are prefix scans over the experts, done in four rounds. Each round scans all of its
// values at once (their shuffle chains interleave, so a round costs about one scan's latency) and, with more than
// one warp, passes the warps' totals through shared memory behind one barrier:
//  1. the end of expert e: offsets[e] clamped into [0, tokens], then the running maximum, so that whatever the
//     offsets hold every expert's rows are a range inside a, in order (the start is the previous end);
//  2. the first row of its scale block in a_scale: the sum of round_up(m_j, 128) over j < e (the layout of vLLM's
//     blockscale_offsets and torchao's stacked quantizer); an expert whose block would run past a_scale's rows is
//     given no rows, so no read leaves the tensor;
//  3. its first portable-kernel tile (the sum of the tiles before it) and, for the stream-K kernel, the sums that
//     choose the chunk limit (hopper_chunk_tally, from each expert's shape under both limits);
//  4. for the stream-K kernel, the schedule's prefix tables: each expert's totals and padded rows under the chosen
//     limit, scanned.
// The table kernel (moe_table.cu) runs it once per call and writes the results to memory; the stream-K kernel's MoE
// pre-pass runs it in every block instead, so that no table kernel stands between the call's start and its decode.
#pragma once

#include <stdint.h>

#include "group_table.h"
#include "hopper_schedule.h"
#include "launchers.h"

constexpr int MOE_WARP = 32;
constexpr unsigned MOE_FULL_MASK = 0xFFFFFFFFu;
constexpr int MOE_ROUND_VALUES = 1 + 3 * HOPPER_CHUNK_LIMITS;  // the widest round: tiles, then units, cost, widest
constexpr unsigned MOE_TALLY_MAX_MASK = ((1u << HOPPER_CHUNK_LIMITS) - 1) << (1 + 2 * HOPPER_CHUNK_LIMITS);

// Value i of a round is combined by maximum where bit i of MAX_MASK is set, else by sum.
template <unsigned MAX_MASK>
__device__ __forceinline__ int64_t round_combine(int i, int64_t a, int64_t b) {
    return (MAX_MASK >> i) & 1u ? (a > b ? a : b) : a + b;
}

template <unsigned MAX_MASK>
__device__ __forceinline__ int64_t round_identity(int i) {
    return (MAX_MASK >> i) & 1u ? INT64_MIN : 0;
}

// One round's results at one thread: over the threads up to it (inclusive), before it (exclusive; the identity at
// thread 0), and over the whole CTA.
template <int N>
struct round_result {
    int64_t inclusive[N], exclusive[N], total[N];
};

// Shared memory for the warps' totals of a CTA of at most WARPS warps: rounds alternate between the two halves, so
// that a round's writes never meet the previous round's reads and one barrier per round suffices.
template <int WARPS>
struct round_totals {
    int64_t half[2][MOE_ROUND_VALUES][WARPS];
};

// Scans of N values over the CTA's threads (a multiple of the warp). Every thread calls it (the branch on the
// warp count is uniform), with round numbers counting up from 0.
template <int N, unsigned MAX_MASK, int WARPS>
__device__ __forceinline__ round_result<N> block_round(const int64_t (&value)[N], round_totals<WARPS> &shared,
                                                       int round) {
    const int lane = threadIdx.x % MOE_WARP, warp = threadIdx.x / MOE_WARP, warps = blockDim.x / MOE_WARP;
    int64_t v[N];
#pragma unroll
    for (int i = 0; i < N; i++) v[i] = value[i];
#pragma unroll
    for (int step = 1; step < MOE_WARP; step *= 2) {
        int64_t other[N];
#pragma unroll
        for (int i = 0; i < N; i++) other[i] = __shfl_up_sync(MOE_FULL_MASK, v[i], step);
        if (lane >= step) {
#pragma unroll
            for (int i = 0; i < N; i++) v[i] = round_combine<MAX_MASK>(i, v[i], other[i]);
        }
    }
    round_result<N> r;
#pragma unroll
    for (int i = 0; i < N; i++) r.exclusive[i] = round_identity<MAX_MASK>(i);  // the warps before this one
    if (warps == 1) {
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = __shfl_sync(MOE_FULL_MASK, v[i], MOE_WARP - 1);
    } else {
        int64_t (*totals)[WARPS] = shared.half[round & 1];
        if (lane == MOE_WARP - 1) {
#pragma unroll
            for (int i = 0; i < N; i++) totals[i][warp] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = round_identity<MAX_MASK>(i);
        for (int w = 0; w < warps; w++) {
#pragma unroll
            for (int i = 0; i < N; i++) {
                const int64_t t = totals[i][w];
                if (w < warp) r.exclusive[i] = round_combine<MAX_MASK>(i, r.exclusive[i], t);
                r.total[i] = round_combine<MAX_MASK>(i, r.total[i], t);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < N; i++) {
        const int64_t previous = __shfl_up_sync(MOE_FULL_MASK, v[i], 1);
        const int64_t before = r.exclusive[i];
        r.inclusive[i] = round_combine<MAX_MASK>(i, before, v[i]);
        r.exclusive[i] = lane == 0 ? before : round_combine<MAX_MASK>(i, before, previous);
    }
    return r;
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

// Every thread of the CTA calls it (e = threadIdx.x); stream_k is uniform. ctas: the stream-K kernel's grid, which
// the chunk limit's choice weighs.
template <int WARPS>
__device__ __forceinline__ moe_expert_layout derive_moe_layout(const nvfp4_moe_call &call, int32_t ctas, bool stream_k,
                                                               round_totals<WARPS> &shared) {
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    moe_expert_layout l;

    // Round 1: the experts' token ranges.
    int64_t end = expert ? call.offsets[e] : 0;
    end = end < 0 ? 0 : (end > call.tokens ? call.tokens : end);
    const round_result<1> ends = block_round<1, 1u>({end}, shared, 0);
    l.start = e > 0 ? ends.exclusive[0] : 0;
    l.rows = expert ? ends.inclusive[0] - l.start : 0;

    // Round 2: the scale blocks.
    const int64_t block_rows = (l.rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    l.scale_row = block_round<1, 0u>({block_rows}, shared, 1).exclusive[0];
    if (l.scale_row + block_rows > call.scale_rows) l.rows = 0;

    // Round 3: the portable kernel's tiles and the chunk limit's tally.
    const int64_t tiles_n = (call.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    int64_t tally[MOE_ROUND_VALUES] = {(l.rows + NVFP4_TILE_M - 1) / NVFP4_TILE_M * tiles_n};
    hopper_shape shapes[HOPPER_CHUNK_LIMITS];
    if (stream_k) {
        hopper_chunk_tally mine = {{0, 0}, {0, 0}, {0, 0}};
#pragma unroll
        for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
            const hopper_problem problem = {(int32_t)l.rows, call.n, call.k, 1, hopper_chunk_limit(i)};
            shapes[i] = hopper_problem_shape(&problem);
            hopper_chunk_tally_add_shape(&mine, i, &shapes[i]);
            tally[1 + i] = (int64_t)mine.units[i];  // sums far inside int64 for any launchable call
            tally[1 + HOPPER_CHUNK_LIMITS + i] = (int64_t)mine.cost[i];
            tally[1 + 2 * HOPPER_CHUNK_LIMITS + i] = (int64_t)mine.widest[i];
        }
    }
    const round_result<MOE_ROUND_VALUES> sums =
        block_round<MOE_ROUND_VALUES, MOE_TALLY_MAX_MASK>(tally, shared, 2);
    l.tile_start = sums.exclusive[0];
    if (!stream_k) return l;

    hopper_chunk_tally total;
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
        total.units[i] = (uint64_t)sums.total[1 + i];
        total.cost[i] = (uint64_t)sums.total[1 + HOPPER_CHUNK_LIMITS + i];
        total.widest[i] = (uint64_t)sums.total[1 + 2 * HOPPER_CHUNK_LIMITS + i];
    }
    const int32_t chunk_rows = hopper_chunk_tally_choice(&total, ctas);
    static_assert(HOPPER_CHUNK_LIMITS == 2, "the chosen shape is picked from two");
    const hopper_shape chosen = chunk_rows == hopper_chunk_limit(0) ? shapes[0] : shapes[1];
    l.problem = hopper_problem{(int32_t)l.rows, call.n, call.k, 1, chunk_rows};

    // Round 4: the schedule's tables under the chosen limit.
    const hopper_prefix own = hopper_shape_totals(&chosen);
    const int64_t padded_rows = chosen.tile_width;  // l = 1
    const round_result<4> scanned =
        block_round<4, 0u>({own.cost, own.units, own.scratch_bytes, padded_rows}, shared, 3);
    l.before = hopper_prefix{scanned.exclusive[0], scanned.exclusive[1], scanned.exclusive[2]};
    l.total = hopper_prefix{scanned.total[0], scanned.total[1], scanned.total[2]};
    l.rows_before = (int32_t)scanned.exclusive[3];
    l.rows_total = (int32_t)scanned.total[3];
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
