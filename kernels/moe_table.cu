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
#include <cuda_runtime.h>
#include <stdint.h>

#include "group_table.h"
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

__global__ void __launch_bounds__(MAX_EXPERTS) moe_table_kernel(const nvfp4_moe_call call, nvfp4_group_entry *table) {
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
    const int threads = (call->experts + 31) / 32 * 32;
    moe_table_kernel<<<1, threads, 0, static_cast<cudaStream_t>(stream)>>>(*call, table);
    return cudaGetLastError();
}
