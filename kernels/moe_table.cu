// moe_table.cu: the group table of an MoE-layout call (grouped_mm), written on the device from the expert end
// offsets, which only the device holds (so the host never synchronises, and one captured graph serves any routing).
//
// One CTA of as many threads as experts rounded up to a warp (a scan step costs two barriers: few experts, few
// steps); thread e writes expert e's entry. The values the entries depend on are three
// prefix scans over the experts, each done in shared memory in log2(MAX_EXPERTS) steps:
//  - the end of expert e: offsets[e] clamped into [0, tokens], then the running maximum, so that whatever the
//    offsets hold every expert's rows are a range inside a, in order (the start is the previous end);
//  - the first row of its scale block in a_scale: the sum of round_up(m_j, 128) over j < e (the layout of vLLM's
//    blockscale_offsets and torchao's stacked quantizer); an expert whose block would run past a_scale's rows is
//    given no rows, so no read leaves the tensor;
//  - its first portable-kernel tile: the sum of the tiles of the experts before it.
// For the stream-K kernel it also writes the schedule's tables (hopper_device_tables), which every pre-pass block
// would otherwise rebuild: the chunk limit (hopper_choose_chunk_rows's sums, added by shared atomics), then each
// expert's totals and padded rows, scanned.
// On the stream-K path the kernel chain is table -> pre-pass -> main, each a programmatic dependent of the one
// before: every launch overlaps its predecessor's tail, and each waits (griddepcontrol.wait) before touching memory.
#include <cuda_runtime.h>
#include <stdint.h>

#include "group_table.h"
#include "hopper_schedule.h"
#include "launchers.h"

namespace {

constexpr int MAX_EXPERTS = NVFP4_MOE_MAX_EXPERTS;

enum ScanOp { SCAN_MAX, SCAN_SUM };

// Inclusive scan of `value` over the CTA's threads (Hillis-Steele in shared memory).
template <ScanOp OP>
__device__ __forceinline__ int64_t inclusive_scan(int64_t value, int64_t *scratch) {
    const int t = threadIdx.x;
    scratch[t] = value;
    __syncthreads();
    for (int step = 1; step < (int)blockDim.x; step *= 2) {
        const int64_t other = t >= step ? scratch[t - step] : (OP == SCAN_MAX ? INT64_MIN : 0);
        __syncthreads();
        value = OP == SCAN_MAX ? (other > value ? other : value) : value + other;
        scratch[t] = value;
        __syncthreads();
    }
    return value;
}

// The stream-K schedule's tables of the experts' sizes (m = rows of this thread's expert, 0 past the experts).
// Block-wide: every thread calls it.
__device__ __forceinline__ void write_schedule_tables(const nvfp4_moe_call &call, int32_t rows, int64_t *scratch) {
    __shared__ unsigned long long sums[3][HOPPER_CHUNK_LIMITS];  // units, cost, widest unit
    if (threadIdx.x < 3 * HOPPER_CHUNK_LIMITS) sums[threadIdx.x / HOPPER_CHUNK_LIMITS][threadIdx.x % HOPPER_CHUNK_LIMITS] = 0;
    __syncthreads();
    hopper_problem problem = {rows, call.n, call.k, 1, HOPPER_CHUNK_MAX_ROWS};
    hopper_chunk_tally mine = {{0, 0}, {0, 0}, {0, 0}};
    hopper_chunk_tally_add(&mine, &problem);
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
        if (mine.units[i] == 0) continue;
        atomicAdd(&sums[0][i], (unsigned long long)mine.units[i]);
        atomicAdd(&sums[1][i], (unsigned long long)mine.cost[i]);
        atomicMax(&sums[2][i], (unsigned long long)mine.widest[i]);
    }
    __syncthreads();
    hopper_chunk_tally total;
    for (int i = 0; i < HOPPER_CHUNK_LIMITS; i++) {
        total.units[i] = sums[0][i];
        total.cost[i] = sums[1][i];
        total.widest[i] = sums[2][i];
    }
    problem.chunk_rows = hopper_chunk_tally_choice(&total, call.ctas);
    const hopper_prefix own = hopper_problem_totals(&problem);
    const int64_t padded_rows = hopper_problem_shape(&problem).tile_width;  // l = 1
    hopper_prefix end;  // inclusive sums over the experts up to this one
    end.cost = inclusive_scan<SCAN_SUM>(own.cost, scratch);
    end.units = inclusive_scan<SCAN_SUM>(own.units, scratch);
    end.scratch_bytes = inclusive_scan<SCAN_SUM>(own.scratch_bytes, scratch);
    const int64_t rows_end = inclusive_scan<SCAN_SUM>(padded_rows, scratch);
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
    __shared__ int64_t scratch[MAX_EXPERTS];
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    int64_t end = expert ? call.offsets[e] : 0;
    end = end < 0 ? 0 : (end > call.tokens ? call.tokens : end);
    end = inclusive_scan<SCAN_MAX>(end, scratch);
    const int64_t start = e > 0 ? scratch[e - 1] : 0;  // scratch still holds the scan: the previous expert's end
    __syncthreads();
    int64_t rows = expert ? end - start : 0;
    const int64_t block_rows = (rows + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS * NVFP4_SF_ATOM_ROWS;
    const int64_t scale_row = inclusive_scan<SCAN_SUM>(block_rows, scratch) - block_rows;
    __syncthreads();
    if (scale_row + block_rows > call.scale_rows) rows = 0;
    const int64_t tiles_n = (call.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    const int64_t tiles = (rows + NVFP4_TILE_M - 1) / NVFP4_TILE_M * tiles_n;
    const int64_t tile_start = inclusive_scan<SCAN_SUM>(tiles, scratch) - tiles;
    if (call.schedule_tables) write_schedule_tables(call, (int32_t)rows, scratch);  // uniform: all threads take it
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
