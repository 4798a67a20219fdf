// moe_table.cu: the group table of an MoE-layout call (grouped_mm), written on the device from the expert end
// offsets, which only the device holds (so the host never synchronises, and one captured graph serves any routing).
//
// One CTA of as many threads as experts rounded up to a warp; thread e writes expert e's entry. The values the
// entries depend on are prefix scans over the experts, each a warp-shuffle scan plus one pass over the warps' totals
// (two barriers, whatever the experts):
//  - the end of expert e: offsets[e] clamped into [0, tokens], then the running maximum, so that whatever the
//    offsets hold every expert's rows are a range inside a, in order (the start is the previous end);
//  - the first row of its scale block in a_scale: the sum of round_up(m_j, 128) over j < e (the layout of vLLM's
//    blockscale_offsets and torchao's stacked quantizer); an expert whose block would run past a_scale's rows is
//    given no rows, so no read leaves the tensor;
//  - its first portable-kernel tile: the sum of the tiles of the experts before it.
// For the stream-K kernel it also writes the schedule's tables (hopper_device_tables), which every pre-pass block
// would otherwise rebuild: the chunk limit (hopper_choose_chunk_rows's sums, reduced the same way: shared-memory
// atomics on 64-bit values would serialise the experts), then each expert's totals and padded rows, scanned.
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
constexpr unsigned FULL_MASK = 0xFFFFFFFFu;

enum ScanOp { SCAN_MAX, SCAN_SUM };

template <ScanOp OP>
__device__ __forceinline__ int64_t combine(int64_t a, int64_t b) {
    return OP == SCAN_MAX ? (a > b ? a : b) : a + b;
}

template <ScanOp OP>
__device__ __forceinline__ int64_t identity() {
    return OP == SCAN_MAX ? INT64_MIN : 0;
}

// A scan's result at one thread: over the threads up to it (inclusive) and before it (exclusive; the identity at
// thread 0).
struct scan_result {
    int64_t inclusive, exclusive;
};

// Scan of `value` over the CTA's threads (a multiple of the warp): shuffles inside each warp, then each thread adds
// the totals of the warps before it. Two barriers whatever the width: the scan's cost does not grow with the
// experts. warp_totals holds one value per warp.
template <ScanOp OP>
__device__ __forceinline__ scan_result block_scan(int64_t value, int64_t *warp_totals) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
#pragma unroll
    for (int step = 1; step < WARP; step *= 2) {
        const int64_t other = __shfl_up_sync(FULL_MASK, value, step);
        if (lane >= step) value = combine<OP>(value, other);
    }
    if (lane == WARP - 1) warp_totals[warp] = value;
    __syncthreads();
    int64_t before = identity<OP>();
    for (int w = 0; w < warp; w++) before = combine<OP>(before, warp_totals[w]);
    __syncthreads();  // warp_totals is the next scan's
    const int64_t previous = __shfl_up_sync(FULL_MASK, value, 1);
    return scan_result{combine<OP>(before, value), lane == 0 ? before : combine<OP>(before, previous)};
}

// The value over every thread of the CTA, at every thread.
template <ScanOp OP>
__device__ __forceinline__ int64_t block_reduce(int64_t value, int64_t *warp_totals) {
#pragma unroll
    for (int step = WARP / 2; step > 0; step /= 2) value = combine<OP>(value, __shfl_xor_sync(FULL_MASK, value, step));
    if (threadIdx.x % WARP == 0) warp_totals[threadIdx.x / WARP] = value;
    __syncthreads();
    value = identity<OP>();
    for (int w = 0; w < (int)blockDim.x / WARP; w++) value = combine<OP>(value, warp_totals[w]);
    __syncthreads();
    return value;
}

// The stream-K schedule's tables of the experts' sizes (m = rows of this thread's expert, 0 past the experts).
// Block-wide: every thread calls it.
__device__ __forceinline__ void write_schedule_tables(const nvfp4_moe_call &call, int32_t rows, int64_t *warp_totals) {
    hopper_problem problem = {rows, call.n, call.k, 1, HOPPER_CHUNK_MAX_ROWS};
    hopper_chunk_tally mine = {{0, 0}, {0, 0}, {0, 0}};
    hopper_chunk_tally_add(&mine, &problem);
    hopper_chunk_tally total;
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {  // the tallies' sums, far inside int64 for launchable calls
        total.units[i] = (uint64_t)block_reduce<SCAN_SUM>((int64_t)mine.units[i], warp_totals);
        total.cost[i] = (uint64_t)block_reduce<SCAN_SUM>((int64_t)mine.cost[i], warp_totals);
        total.widest[i] = (uint64_t)block_reduce<SCAN_MAX>((int64_t)mine.widest[i], warp_totals);
    }
    problem.chunk_rows = hopper_chunk_tally_choice(&total, call.ctas);
    const hopper_prefix own = hopper_problem_totals(&problem);
    const int64_t padded_rows = hopper_problem_shape(&problem).tile_width;  // l = 1
    hopper_prefix end;  // inclusive sums over the experts up to this one
    end.cost = block_scan<SCAN_SUM>(own.cost, warp_totals).inclusive;
    end.units = block_scan<SCAN_SUM>(own.units, warp_totals).inclusive;
    end.scratch_bytes = block_scan<SCAN_SUM>(own.scratch_bytes, warp_totals).inclusive;
    const int64_t rows_end = block_scan<SCAN_SUM>(padded_rows, warp_totals).inclusive;
    hopper_device_tables *tables = static_cast<hopper_device_tables *>(call.schedule_tables);
    const int e = threadIdx.x;
    if (e == 0) {
        tables->count = call.experts;
        tables->chunk_rows = problem.chunk_rows;
    }
    if (e >= call.experts) return;
    // Where hopper_device_tables_* put them, from call.experts: thread 0's write of count is not visible here.
    hopper_prefix *prefix = reinterpret_cast<hopper_prefix *>(tables + 1);
    hopper_problem *problems = reinterpret_cast<hopper_problem *>(prefix + call.experts + 1);
    int32_t *row_prefix = reinterpret_cast<int32_t *>(problems + call.experts);
    const hopper_prefix begin = {end.cost - own.cost, end.units - own.units, end.scratch_bytes - own.scratch_bytes};
    prefix[e] = begin;
    problems[e] = problem;
    row_prefix[e] = (int32_t)(rows_end - padded_rows);
    if (e == call.experts - 1) {
        prefix[e + 1] = end;
        row_prefix[e + 1] = (int32_t)rows_end;
        tables->padded_rows = (int32_t)rows_end;
    }
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
    __shared__ int64_t warp_totals[MAX_EXPERTS / WARP];
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    int64_t end = expert ? call.offsets[e] : 0;
    end = end < 0 ? 0 : (end > call.tokens ? call.tokens : end);
    const scan_result ends = block_scan<SCAN_MAX>(end, warp_totals);
    end = ends.inclusive;
    const int64_t start = e > 0 ? ends.exclusive : 0;
    int64_t rows = expert ? end - start : 0;
    const int64_t block_rows = (rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    const int64_t scale_row = block_scan<SCAN_SUM>(block_rows, warp_totals).exclusive;
    if (scale_row + block_rows > call.scale_rows) rows = 0;
    const int64_t tiles_n = (call.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    const int64_t tiles = (rows + NVFP4_TILE_M - 1) / NVFP4_TILE_M * tiles_n;
    const int64_t tile_start = block_scan<SCAN_SUM>(tiles, warp_totals).exclusive;
    if (call.schedule_tables) write_schedule_tables(call, (int32_t)rows, warp_totals);  // uniform: all threads take it
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
