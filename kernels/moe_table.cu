// moe_table.cu: the group table of an MoE-layout call (grouped_mm), written on the device from the expert end
// offsets, which only the device holds (so the host never synchronises, and one captured graph serves any routing).
//
// One CTA of as many threads as experts rounded up to a warp; thread e writes expert e's entry. With one warp
// (E <= 32, every benchmark spec) the kernel is a single chain of dependent instructions that nothing hides, so its
// time is its instruction latency, and a longer chain delays the whole call: the pre-pass decodes only after it.
// The values the entries depend on are prefix scans over the experts, done in four rounds; each round scans all
// of its values at once (their shuffle chains interleave, so a round costs about one scan's latency) and, with
// more than one warp, passes the warps' totals through shared memory behind one barrier:
//  1. the end of expert e: offsets[e] clamped into [0, tokens], then the running maximum, so that whatever the
//     offsets hold every expert's rows are a range inside a, in order (the start is the previous end);
//  2. the first row of its scale block in a_scale: the sum of round_up(m_j, 128) over j < e (the layout of vLLM's
//     blockscale_offsets and torchao's stacked quantizer); an expert whose block would run past a_scale's rows is
//     given no rows, so no read leaves the tensor;
//  3. its first portable-kernel tile (the sum of the tiles before it) and, for the stream-K kernel, the sums that
//     choose the chunk limit (hopper_chunk_tally, from each expert's shape under both limits);
//  4. for the stream-K kernel, the schedule's tables (hopper_device_tables), which every pre-pass block would
//     otherwise rebuild: each expert's totals and padded rows under the chosen limit, scanned.
// On the stream-K path the kernel chain is table -> pre-pass -> main, each a programmatic dependent of the one
// before: every launch overlaps its predecessor's tail, and each waits (griddepcontrol.wait) before touching memory.
#include <cuda_runtime.h>
#include <stdint.h>

#include "group_table.h"
#include "hopper_schedule.h"
#include "launchers.h"

namespace {

constexpr int MAX_EXPERTS = NVFP4_MOE_MAX_EXPERTS;

constexpr int WARP = 32;
constexpr int MAX_WARPS = MAX_EXPERTS / WARP;
constexpr unsigned FULL_MASK = 0xFFFFFFFFu;
constexpr int ROUND_VALUES = 1 + 3 * HOPPER_CHUNK_LIMITS;  // the widest round: tiles, then units, cost, widest
constexpr unsigned TALLY_MAX_MASK = ((1u << HOPPER_CHUNK_LIMITS) - 1) << (1 + 2 * HOPPER_CHUNK_LIMITS);

// Value i of a round is combined by maximum where bit i of MAX_MASK is set, else by sum.
template <unsigned MAX_MASK>
__device__ __forceinline__ int64_t combine(int i, int64_t a, int64_t b) {
    return (MAX_MASK >> i) & 1u ? (a > b ? a : b) : a + b;
}

template <unsigned MAX_MASK>
__device__ __forceinline__ int64_t identity(int i) {
    return (MAX_MASK >> i) & 1u ? INT64_MIN : 0;
}

// One round's results at one thread: over the threads up to it (inclusive), before it (exclusive; the identity at
// thread 0), and over the whole CTA.
template <int N>
struct round_result {
    int64_t inclusive[N], exclusive[N], total[N];
};

// Shared memory for the warps' totals: rounds alternate between the two halves, so that a round's writes never
// meet the previous round's reads and one barrier per round suffices.
struct round_totals {
    int64_t half[2][ROUND_VALUES][MAX_WARPS];
};

// Scans of N values over the CTA's threads (a multiple of the warp). Every thread calls it (the branch on the
// warp count is uniform), with round numbers counting up from 0.
template <int N, unsigned MAX_MASK>
__device__ __forceinline__ round_result<N> block_round(const int64_t (&value)[N], round_totals &shared, int round) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, warps = blockDim.x / WARP;
    int64_t v[N];
#pragma unroll
    for (int i = 0; i < N; i++) v[i] = value[i];
#pragma unroll
    for (int step = 1; step < WARP; step *= 2) {
        int64_t other[N];
#pragma unroll
        for (int i = 0; i < N; i++) other[i] = __shfl_up_sync(FULL_MASK, v[i], step);
        if (lane >= step) {
#pragma unroll
            for (int i = 0; i < N; i++) v[i] = combine<MAX_MASK>(i, v[i], other[i]);
        }
    }
    round_result<N> r;
#pragma unroll
    for (int i = 0; i < N; i++) r.exclusive[i] = identity<MAX_MASK>(i);  // the warps before this one
    if (warps == 1) {
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = __shfl_sync(FULL_MASK, v[i], WARP - 1);
    } else {
        int64_t (*totals)[MAX_WARPS] = shared.half[round & 1];
        if (lane == WARP - 1) {
#pragma unroll
            for (int i = 0; i < N; i++) totals[i][warp] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < N; i++) r.total[i] = identity<MAX_MASK>(i);
        for (int w = 0; w < warps; w++) {
#pragma unroll
            for (int i = 0; i < N; i++) {
                const int64_t t = totals[i][w];
                if (w < warp) r.exclusive[i] = combine<MAX_MASK>(i, r.exclusive[i], t);
                r.total[i] = combine<MAX_MASK>(i, r.total[i], t);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < N; i++) {
        const int64_t previous = __shfl_up_sync(FULL_MASK, v[i], 1);
        const int64_t before = r.exclusive[i];
        r.inclusive[i] = combine<MAX_MASK>(i, before, v[i]);
        r.exclusive[i] = lane == 0 ? before : combine<MAX_MASK>(i, before, previous);
    }
    return r;
}

__global__ void __launch_bounds__(MAX_EXPERTS) moe_table_kernel(const nvfp4_moe_call call, nvfp4_group_entry *table) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // The stream-K pre-pass after it (a programmatic dependent) may launch now and wait for this kernel's writes.
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    // On the stream-K path this kernel is itself a programmatic dependent of the kernel before it, which may write
    // the offsets (or have freed the memory this table reuses): nothing is read or written before that one ends.
    // Without the launch attribute it returns at once.
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
    __shared__ round_totals shared;
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    const bool stream_k = call.schedule_tables != nullptr;  // uniform

    // Round 1: the experts' token ranges.
    int64_t end = expert ? call.offsets[e] : 0;
    end = end < 0 ? 0 : (end > call.tokens ? call.tokens : end);
    const round_result<1> ends = block_round<1, 1u>({end}, shared, 0);
    end = ends.inclusive[0];
    const int64_t start = e > 0 ? ends.exclusive[0] : 0;
    int64_t rows = expert ? end - start : 0;

    // Round 2: the scale blocks.
    const int64_t block_rows = (rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    const int64_t scale_row = block_round<1, 0u>({block_rows}, shared, 1).exclusive[0];
    if (scale_row + block_rows > call.scale_rows) rows = 0;

    // Round 3: the portable kernel's tiles and the chunk limit's tally.
    const int64_t tiles_n = (call.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    int64_t tally[ROUND_VALUES] = {(rows + NVFP4_TILE_M - 1) / NVFP4_TILE_M * tiles_n};
    hopper_shape shapes[HOPPER_CHUNK_LIMITS];
    if (stream_k) {
        hopper_chunk_tally mine = {{0, 0}, {0, 0}, {0, 0}};
#pragma unroll
        for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
            const hopper_problem problem = {(int32_t)rows, call.n, call.k, 1, hopper_chunk_limit(i)};
            shapes[i] = hopper_problem_shape(&problem);
            hopper_chunk_tally_add_shape(&mine, i, &shapes[i]);
            tally[1 + i] = (int64_t)mine.units[i];  // sums far inside int64 for any launchable call
            tally[1 + HOPPER_CHUNK_LIMITS + i] = (int64_t)mine.cost[i];
            tally[1 + 2 * HOPPER_CHUNK_LIMITS + i] = (int64_t)mine.widest[i];
        }
    }
    const round_result<ROUND_VALUES> sums = block_round<ROUND_VALUES, TALLY_MAX_MASK>(tally, shared, 2);
    const int64_t tile_start = sums.exclusive[0];
    if (stream_k) {
        hopper_chunk_tally total;
        for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
            total.units[i] = (uint64_t)sums.total[1 + i];
            total.cost[i] = (uint64_t)sums.total[1 + HOPPER_CHUNK_LIMITS + i];
            total.widest[i] = (uint64_t)sums.total[1 + 2 * HOPPER_CHUNK_LIMITS + i];
        }
        const int32_t chunk_rows = hopper_chunk_tally_choice(&total, call.ctas);
        static_assert(HOPPER_CHUNK_LIMITS == 2, "the chosen shape is picked from two");
        const hopper_shape chosen = chunk_rows == hopper_chunk_limit(0) ? shapes[0] : shapes[1];

        // Round 4: the schedule's tables under the chosen limit.
        const hopper_prefix own = hopper_shape_totals(&chosen);
        const int64_t padded_rows = chosen.tile_width;  // l = 1
        const round_result<4> scanned =
            block_round<4, 0u>({own.cost, own.units, own.scratch_bytes, padded_rows}, shared, 3);
        hopper_device_tables *tables = static_cast<hopper_device_tables *>(call.schedule_tables);
        if (e == 0) {
            tables->count = call.experts;
            tables->chunk_rows = chunk_rows;
            tables->padded_rows = (int32_t)scanned.total[3];
        }
        if (expert) {
            // Where hopper_device_tables_* put them, from call.experts: thread 0's write of count is not visible.
            hopper_prefix *prefix = reinterpret_cast<hopper_prefix *>(tables + 1);
            hopper_problem *problems = reinterpret_cast<hopper_problem *>(prefix + call.experts + 1);
            int32_t *row_prefix = reinterpret_cast<int32_t *>(problems + call.experts);
            prefix[e] = hopper_prefix{scanned.exclusive[0], scanned.exclusive[1], scanned.exclusive[2]};
            problems[e] = hopper_problem{(int32_t)rows, call.n, call.k, 1, chunk_rows};
            row_prefix[e] = (int32_t)scanned.exclusive[3];
            if (e == call.experts - 1) {
                prefix[e + 1] = hopper_prefix{scanned.total[0], scanned.total[1], scanned.total[2]};
                row_prefix[e + 1] = (int32_t)scanned.total[3];
            }
        }
    }
    if (!expert) return;

    const int64_t row_bytes = call.k / 2, scale_cols = call.k / NVFP4_SF_VEC;
    const int64_t n_padded = (call.n + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    const int32_t rowblock_stride = (int32_t)(call.k / NVFP4_K_ALIGN * NVFP4_SF_ATOM_BYTES);
    nvfp4_group_entry g;
    g.a = call.a + start * row_bytes;
    g.b = call.b + (int64_t)e * call.n * row_bytes;
    g.sfa = call.a_scale + scale_row * scale_cols;
    g.sfb = call.b_scale + (int64_t)e * n_padded * scale_cols;
    g.c = call.out + start * call.n * 2;
    g.a_batch_stride = g.b_batch_stride = g.c_batch_stride = g.sfa_batch_stride = g.sfb_batch_stride = 0;
    g.m = (int32_t)rows, g.n = call.n, g.k = call.k, g.l = 1;
    g.a_row_stride = g.b_row_stride = (int32_t)row_bytes;
    g.c_row_stride = call.n * 2;
    g.sfa_rowblock_stride = g.sfb_rowblock_stride = rowblock_stride;
    g.sfa_kblock_stride = g.sfb_kblock_stride = NVFP4_SF_ATOM_BYTES;
    g.tile_start = (int32_t)tile_start;
    table[e] = g;
}

}  // namespace

extern "C" int nvfp4_moe_table_launch(const nvfp4_moe_call *call, nvfp4_group_entry *table, void *stream) {
    if (call->experts < 1 || call->experts > MAX_EXPERTS) return cudaErrorInvalidValue;
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(1);
    config.blockDim = dim3((call->experts + 31) / 32 * 32);
    config.stream = static_cast<cudaStream_t>(stream);
    // The stream-K path (sm_90, schedule tables wanted) launches it as a programmatic dependent, so its launch
    // overlaps the tail of the kernel before it; the portable path (any GPU) launches it plainly.
    cudaLaunchAttribute attribute = {};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    if (call->schedule_tables) config.attrs = &attribute, config.numAttrs = 1;
    const cudaError_t failed = cudaLaunchKernelEx(&config, moe_table_kernel, *call, table);
    return failed != cudaSuccess ? failed : cudaGetLastError();
}
