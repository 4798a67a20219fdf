// portable_gemm.cu: the portable NVFP4 grouped GEMM (sm_80 and newer), c = (a*sfa) @ (b*sfb)^T.
//
// One CTA computes one 64 x 128 output tile (TILE_M rows of a, TILE_N rows of b) of one batch slice of
// one group; the launch has one CTA per tile of all non-empty groups, and a CTA finds its tile with
// locate_tile (grouped_launch.cuh): consecutive CTAs walk M first, so the CTAs that share a tile of b
// (the wide weight operand) run together and read it from L2.
//
// Per 64-wide K step, each of the 128 threads:
//   - loads 16 packed bytes (32 e2m1 values) of one row of a and two rows of b, with their scales,
//     into registers one step ahead, so the loads of step k+1 are in flight during the MMAs of step k;
//   - decodes them exactly to fp16 with one multiply per pair (nvfp4.cuh: values carry a factor 2^-7 that
//     the epilogue removes) and stores them into shared memory. Rows past M or N are stored as zeros and
//     their memory (and their padding scales) is never read.
// Each of the 4 warps then multiplies a 32 x 64 sub-tile with mma.sync m16n8k16 (fp16 in, fp32
// accumulate), fragments loaded by ldmatrix from rows padded by 16 bytes so the 8 row addresses of
// each ldmatrix phase hit different banks. The epilogue rounds to fp16 (nearest) and stores only
// elements inside M x N.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "grouped_launch.cuh"
#include "launchers.h"
#include "nvfp4.cuh"

namespace {

constexpr int TILE_M = NVFP4_TILE_M;
constexpr int TILE_N = NVFP4_TILE_N;
constexpr int TILE_K = 64;                   // one 64-K block: 4 scales per row
constexpr int THREADS = 128;
constexpr int WARP_M = 32, WARP_N = 64;      // 2 x 2 warps
constexpr int SMEM_STRIDE = TILE_K + 8;      // halves per shared row; +16 bytes breaks bank conflicts
constexpr int BYTES_PER_THREAD_ROW = 16;     // 32 e2m1 values: half of a 64-K row

static_assert(TILE_M * 2 == THREADS && TILE_N * 2 == 2 * THREADS, "two threads per row, one row of a and two of b");

// Registers holding one thread's share of one K step of one row: 16 packed bytes, 2 scales.
struct row_chunk {
    uint4 packed;
    uint32_t scales;  // two e4m3 bytes: scale of elements 0..15 in bits 7..0, of 16..31 in bits 15..8
    bool valid;
};

__device__ __forceinline__ row_chunk load_row_chunk(const uint8_t *rows, int32_t row_stride, const uint8_t *sf,
                                                    int32_t sf_rowblock_stride, int32_t sf_kblock_stride, int row,
                                                    int num_rows, int kblock, int part) {
    row_chunk chunk;
    chunk.valid = row < num_rows;
    chunk.packed = make_uint4(0, 0, 0, 0);
    chunk.scales = 0;
    if (chunk.valid) {
        chunk.packed = *reinterpret_cast<const uint4 *>(rows + (int64_t)row * row_stride +
                                                        kblock * (TILE_K / 2) + part * BYTES_PER_THREAD_ROW);
        chunk.scales = *reinterpret_cast<const uint16_t *>(
            sf + sf_offset(row, kblock, sf_rowblock_stride, sf_kblock_stride) + part * 2);
    }
    return chunk;
}

// Decodes a chunk into 32 halves at dst (16-byte aligned), K permuted inside each group of 8 the same way
// for a and b (dequant_e2m1x8_paired); invalid rows become zeros.
__device__ __forceinline__ void store_row_chunk(const row_chunk &chunk, __half *dst) {
    uint4 *out = reinterpret_cast<uint4 *>(dst);
    if (!chunk.valid) {
#pragma unroll
        for (int i = 0; i < 4; i++) out[i] = make_uint4(0, 0, 0, 0);
        return;
    }
    const __half2 scale_lo = __half2half2(e4m3_to_scaled_half(chunk.scales & 0xFFu));
    const __half2 scale_hi = __half2half2(e4m3_to_scaled_half(chunk.scales >> 8));
    const uint32_t words[4] = {chunk.packed.x, chunk.packed.y, chunk.packed.z, chunk.packed.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t pairs[4];
        dequant_e2m1x8_paired(words[i], i < 2 ? scale_lo : scale_hi, pairs);
        out[i] = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
    }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half *p) {
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// float16 and bfloat16 outputs: one element, and a pair in one 4-byte store.
struct half_output {
    typedef __half element;
    typedef __half2 pair;
    static __device__ __forceinline__ element one(float x) { return __float2half_rn(x); }
    static __device__ __forceinline__ pair two(float x, float y) { return __floats2half2_rn(x, y); }
};
struct bfloat16_output {
    typedef __nv_bfloat16 element;
    typedef __nv_bfloat162 pair;
    static __device__ __forceinline__ element one(float x) { return __float2bfloat16_rn(x); }
    static __device__ __forceinline__ pair two(float x, float y) { return __floats2bfloat162_rn(x, y); }
};

// Stores two adjacent outputs of one row (accumulators times `factor`: 2^14 for the operands' 2^-14, times the
// entry's alpha where there is one), each rounded once; a pair store when both exist and the address allows it.
template <typename Output>
__device__ __forceinline__ void store_pair(uint8_t *c_row, int col, int n, float factor, float x, float y) {
    x *= factor;
    y *= factor;
    typename Output::element *p = reinterpret_cast<typename Output::element *>(c_row) + col;
    if (col + 1 < n && (reinterpret_cast<uintptr_t>(p) & 3) == 0) {
        *reinterpret_cast<typename Output::pair *>(p) = Output::two(x, y);
    } else {
        if (col < n) p[0] = Output::one(x);
        if (col + 1 < n) p[1] = Output::one(y);
    }
}

// Past the last tile of a table whose tile count only the device knows (a grid sized by a bound).
template <int CAPACITY>
__device__ __forceinline__ bool past_last_tile(const grouped_params<CAPACITY> &params, int tile) {
    if (!params.bounded_grid) return false;
    const nvfp4_group_entry &last = (params.device_table ? params.device_table : params.entries)[params.num_entries - 1];
    const int tiles = (last.m + NVFP4_TILE_M - 1) / NVFP4_TILE_M * ((last.n + NVFP4_TILE_N - 1) / NVFP4_TILE_N) * last.l;
    return tile >= last.tile_start + tiles;
}

template <int CAPACITY>
__global__ void __launch_bounds__(THREADS) portable_gemm_kernel(const __grid_constant__ grouped_params<CAPACITY> params) {
    __shared__ __align__(16) __half a_tile[TILE_M * SMEM_STRIDE];
    __shared__ __align__(16) __half b_tile[TILE_N * SMEM_STRIDE];

    if (past_last_tile(params, blockIdx.x)) return;
    const tile_coords where = locate_tile(params, blockIdx.x);
    const nvfp4_group_entry &g = *where.group;
    const int slice = where.slice, m0 = where.m0, n0 = where.n0;
    const int m = g.m, n = g.n, kblocks = g.k / TILE_K;

    const uint8_t *a = g.a + slice * g.a_batch_stride;
    const uint8_t *b = g.b + slice * g.b_batch_stride;
    const uint8_t *sfa = g.sfa + slice * g.sfa_batch_stride;
    const uint8_t *sfb = g.sfb + slice * g.sfb_batch_stride;

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int load_row = tid / 2, part = tid % 2;
    const int warp_m = (warp % 2) * WARP_M, warp_n = (warp / 2) * WARP_N;

    float acc[WARP_M / 16][WARP_N / 8][4] = {};

    auto load_step = [&](int kblock, row_chunk (&chunks)[3]) {
        chunks[0] = load_row_chunk(a, g.a_row_stride, sfa, g.sfa_rowblock_stride, g.sfa_kblock_stride,
                                   m0 + load_row, m, kblock, part);
#pragma unroll
        for (int i = 0; i < 2; i++)
            chunks[1 + i] = load_row_chunk(b, g.b_row_stride, sfb, g.sfb_rowblock_stride, g.sfb_kblock_stride,
                                           n0 + i * TILE_M + load_row, n, kblock, part);
    };

    row_chunk chunks[3];
    load_step(0, chunks);
    for (int kblock = 0; kblock < kblocks; kblock++) {
        store_row_chunk(chunks[0], &a_tile[load_row * SMEM_STRIDE + part * 32]);
#pragma unroll
        for (int i = 0; i < 2; i++)
            store_row_chunk(chunks[1 + i], &b_tile[(i * TILE_M + load_row) * SMEM_STRIDE + part * 32]);
        __syncthreads();
        if (kblock + 1 < kblocks) load_step(kblock + 1, chunks);

#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            uint32_t a_frag[WARP_M / 16][4];
#pragma unroll
            for (int i = 0; i < WARP_M / 16; i++)
                ldmatrix_x4(a_frag[i], &a_tile[(warp_m + i * 16 + lane % 16) * SMEM_STRIDE + kk + (lane / 16) * 8]);
#pragma unroll
            for (int j = 0; j < WARP_N / 16; j++) {
                // Matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
                uint32_t b_frag[4];
                const int quad = lane / 8;
                ldmatrix_x4(b_frag, &b_tile[(warp_n + j * 16 + (quad / 2) * 8 + lane % 8) * SMEM_STRIDE + kk +
                                            (quad % 2) * 8]);
#pragma unroll
                for (int i = 0; i < WARP_M / 16; i++) {
                    mma_m16n8k16(acc[i][2 * j], a_frag[i], b_frag[0], b_frag[1]);
                    mma_m16n8k16(acc[i][2 * j + 1], a_frag[i], b_frag[2], b_frag[3]);
                }
            }
        }
        __syncthreads();
    }

    uint8_t *c = g.c + slice * g.c_batch_stride;
    const nvfp4_group_entry *table = params.device_table ? params.device_table : params.entries;
    const float factor = ACCUMULATOR_SCALE * (params.alpha ? params.alpha[where.group - table] : 1.0f);
#pragma unroll
    for (int i = 0; i < WARP_M / 16; i++) {
#pragma unroll
        for (int half_row = 0; half_row < 2; half_row++) {
            const int row = m0 + warp_m + i * 16 + lane / 4 + half_row * 8;
            if (row >= m) continue;
            uint8_t *c_row = c + (int64_t)row * g.c_row_stride;
#pragma unroll
            for (int j = 0; j < WARP_N / 8; j++) {
                const int col = n0 + warp_n + j * 8 + (lane % 4) * 2;
                if (params.out_bf16)
                    store_pair<bfloat16_output>(c_row, col, n, factor, acc[i][j][2 * half_row], acc[i][j][2 * half_row + 1]);
                else
                    store_pair<half_output>(c_row, col, n, factor, acc[i][j][2 * half_row], acc[i][j][2 * half_row + 1]);
            }
        }
    }
}

template <int CAPACITY>
struct portable_family {
    static cudaError_t launch(grouped_params<CAPACITY> &params, const nvfp4_launch_shape &shape, cudaStream_t stream) {
        static CUfunction handles[NVFP4_MAX_DEVICES];
        return launch_kernel(portable_gemm_kernel<CAPACITY>, handles, shape.device, shape.units, THREADS, 0, stream,
                             params);
    }
};

}  // namespace

extern "C" int nvfp4_portable_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                     int32_t num_entries, const nvfp4_launch_shape *shape, void *stream) {
    return launch_grouped<portable_family>(host_entries, device_table, num_entries, shape, stream);
}
