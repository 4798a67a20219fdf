// hopper_gemm.cu: the Hopper (sm_90a) NVFP4 grouped GEMM, c = (a*sfa) @ (b*sfb)^T, on wgmma.
//
// Same tiles as the portable kernel (grouped_launch.cuh): one CTA per 64 x 128 output tile, 64 rows of a
// (tokens) by 128 rows of b (weights). The operands are swapped on the tensor cores: the weights sit on
// wgmma's 64-row side, decoded straight into the A fragment registers; the tokens are wgmma's n = 64
// side, decoded into shared memory in the 128-byte-swizzled K-major layout the descriptor reads.
//
// The CTA is two warpgroups; warpgroup w owns weight rows n0 + 64w .. n0 + 64w + 63. Per 64-K step:
//   - every thread decodes its weight fragments for the NEXT step (two rows, 8 bytes and one scale each)
//     while the wgmma of the current step runs asynchronously on registers decoded one step earlier;
//   - once both warpgroups' wgmma of the previous step have finished reading it (wait_group 1 + barrier),
//     all 256 threads decode the next step's 64 x 64 token tile into the other shared-memory buffer
//     (one thread per token row and scale group), then a barrier publishes it to the tensor cores.
// K is permuted inside each 64-K block so that a thread reads contiguous bytes: lane t of a quad reads
// original k in [16t, 16t + 16) (one scale group) of its rows and decodes them into 8 half2 pairs
// (dequant_e2m1x8_paired); pair p fills fragment slots 2t, 2t+1 (p even) or 2t+8, 2t+9 (p odd) of k16
// step p / 2. The token decode puts pair p at the same wgmma k index, so every dot product is unchanged.
// Decoded values carry 2^-7 each (nvfp4.cuh); the epilogue multiplies by 2^14, rounds to fp16 and writes
// c transposed from the accumulators (weight row = column of c), only inside M x N.
#include <cuda_runtime.h>
#include <stdint.h>

#include "grouped_launch.cuh"
#include "launchers.h"
#include "nvfp4.cuh"

namespace {

constexpr int TILE_K = 64;                 // one 64-K block: 4 scales per row
constexpr int WARPGROUPS = 2;
constexpr int THREADS = 128 * WARPGROUPS;
constexpr int WG_ROWS = NVFP4_TILE_N / WARPGROUPS;  // 64 weight rows per warpgroup: wgmma's M
constexpr int TOKENS = NVFP4_TILE_M;       // wgmma's N
constexpr int TOKEN_TILE_HALVES = TOKENS * TILE_K;  // 8 KB: one 128-byte row per token
constexpr int ACCUMULATORS = TOKENS / 2;   // fp32 per thread for m64n64
static_assert(WG_ROWS == 64 && TOKENS == 64, "the wgmma below is m64n64k16");
static_assert(TOKENS * 4 == THREADS, "one thread per token row and scale group");

// wgmma descriptor of a K-major tile of 128-byte rows with the 128-byte swizzle (8-row atoms of 1024 bytes);
// the leading byte offset is unused in this mode.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void *tile) {
    const uint64_t address = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
    return ((address >> 4) & 0x3FFFull) | (1ull << 16) | (uint64_t(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[ACCUMULATORS], const uint32_t (&a)[4], uint64_t b_desc) {
    asm volatile(
        "{\n"
        ".reg .pred accumulate;\n"
        "setp.ne.b32 accumulate, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, accumulate, 1, 1, 0;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

// One row's share of one 64-K step: 8 packed bytes (16 e2m1 values, one scale group) and that scale
// (0 for rows past the end, which turns their decoded values into zeros without reading memory).
struct row_part {
    uint2 packed;
    uint32_t scale;
};

__device__ __forceinline__ row_part load_row_part(const uint8_t *rows, int32_t row_stride, const uint8_t *sf,
                                                  int32_t sf_rowblock_stride, int32_t sf_kblock_stride, int row,
                                                  int num_rows, int kblock, int group) {
    row_part part{make_uint2(0, 0), 0};
    if (row < num_rows) {
        part.packed = *reinterpret_cast<const uint2 *>(rows + (int64_t)row * row_stride + kblock * (TILE_K / 2) + 8 * group);
        part.scale = sf[sf_offset(row, kblock, sf_rowblock_stride, sf_kblock_stride) + group];
    }
    return part;
}

// The 8 half2 pairs of a row part (dequant_e2m1x8_paired's pairing). Weights and tokens both go through
// here, so pair p holds the same original k on both sides.
__device__ __forceinline__ void decode_row_part(const row_part &part, uint32_t (&pairs)[8]) {
    const __half2 scale = __half2half2(e4m3_to_scaled_half(part.scale));
    uint32_t (&first)[4] = *reinterpret_cast<uint32_t(*)[4]>(&pairs[0]);
    uint32_t (&second)[4] = *reinterpret_cast<uint32_t(*)[4]>(&pairs[4]);
    dequant_e2m1x8_paired(part.packed.x, scale, first);
    dequant_e2m1x8_paired(part.packed.y, scale, second);
}

template <int CAPACITY>
__global__ void __launch_bounds__(THREADS, 2) hopper_gemm_kernel(const __grid_constant__ grouped_params<CAPACITY> params) {
    __shared__ __align__(1024) __half token_tiles[2][TOKEN_TILE_HALVES];

    const tile_coords where = locate_tile(params, blockIdx.x);
    const nvfp4_group_entry &g = *where.group;
    const int m = g.m, n = g.n, kblocks = g.k / TILE_K;
    const uint8_t *a = g.a + where.slice * g.a_batch_stride;
    const uint8_t *b = g.b + where.slice * g.b_batch_stride;
    const uint8_t *sfa = g.sfa + where.slice * g.sfa_batch_stride;
    const uint8_t *sfb = g.sfb + where.slice * g.sfb_batch_stride;

    const int tid = threadIdx.x, warpgroup = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
    const int quad_row = lane / 4, quad_lane = lane % 4;
    const int weight_row = where.n0 + warpgroup * WG_ROWS + warp * 16 + quad_row;  // and weight_row + 8
    const int token_row = tid / 4, token_group = tid % 4;

    auto load_weights = [&](int kblock, row_part (&parts)[2]) {
#pragma unroll
        for (int h = 0; h < 2; h++)
            parts[h] = load_row_part(b, g.b_row_stride, sfb, g.sfb_rowblock_stride, g.sfb_kblock_stride,
                                     weight_row + 8 * h, n, kblock, quad_lane);
    };
    auto load_tokens = [&](int kblock) {
        return load_row_part(a, g.a_row_stride, sfa, g.sfa_rowblock_stride, g.sfa_kblock_stride,
                             where.m0 + token_row, m, kblock, token_group);
    };
    // A fragments of the four k16 steps: {row lo, slots 2t}, {row hi, 2t}, {row lo, 2t+8}, {row hi, 2t+8}.
    auto decode_weights = [&](const row_part (&parts)[2], uint32_t (&frag)[4][4]) {
        uint32_t lo[8], hi[8];
        decode_row_part(parts[0], lo);
        decode_row_part(parts[1], hi);
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            frag[ks][0] = lo[2 * ks];
            frag[ks][1] = hi[2 * ks];
            frag[ks][2] = lo[2 * ks + 1];
            frag[ks][3] = hi[2 * ks + 1];
        }
    };
    // Pair p of a token row part goes to k16 step p / 2, slots 2t (+8 if p is odd): 16-byte chunk p of the
    // 128-byte row, stored at chunk p ^ (row % 8) by the 128-byte swizzle.
    auto store_tokens = [&](const row_part &part, __half *tile) {
        uint32_t pairs[8];
        decode_row_part(part, pairs);
        uint32_t *row = reinterpret_cast<uint32_t *>(tile + token_row * TILE_K);
#pragma unroll
        for (int c = 0; c < 8; c++) row[((c ^ (token_row % 8)) * 8 + 2 * token_group) / 2] = pairs[c];
    };

    float acc[ACCUMULATORS];
#pragma unroll
    for (int i = 0; i < ACCUMULATORS; i++) acc[i] = 0.0f;
    uint32_t frag_even[4][4], frag_odd[4][4];  // two named sets: register arrays need constant indices
    row_part weight_parts[2];

    load_weights(0, weight_parts);
    row_part token_part = load_tokens(0);
    decode_weights(weight_parts, frag_even);
    store_tokens(token_part, token_tiles[0]);
    if (kblocks > 1) {
        load_weights(1, weight_parts);
        token_part = load_tokens(1);
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();

    auto step = [&](int kblock, const uint32_t (&frag)[4][4], uint32_t (&next_frag)[4][4], const __half *tile,
                    __half *next_tile) {
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int ks = 0; ks < 4; ks++) wgmma_m64n64k16(acc, frag[ks], swizzled_tile_descriptor(&tile[ks * 16]));
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        // The previous step's wgmma (this warpgroup's, then by the barrier both) has finished reading the
        // other fragment set and token buffer; refill them while this step's wgmma runs.
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
        __syncthreads();
        if (kblock + 1 < kblocks) {
            decode_weights(weight_parts, next_frag);
            store_tokens(token_part, next_tile);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            if (kblock + 2 < kblocks) {
                load_weights(kblock + 2, weight_parts);
                token_part = load_tokens(kblock + 2);
            }
        }
        __syncthreads();
    };
    for (int kblock = 0; kblock < kblocks; kblock += 2) {
        step(kblock, frag_even, frag_odd, token_tiles[0], token_tiles[1]);
        if (kblock + 1 < kblocks) step(kblock + 1, frag_odd, frag_even, token_tiles[1], token_tiles[0]);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");

    // acc[4j + e]: weight row (quad_row + 8 * (e / 2)) of this warp, token 8j + 2t + e % 2.
    uint8_t *c = g.c + where.slice * g.c_batch_stride;
#pragma unroll
    for (int j = 0; j < TOKENS / 8; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int col = weight_row + 8 * (e / 2);
            const int row = where.m0 + 8 * j + 2 * quad_lane + e % 2;
            if (row < m && col < n)
                reinterpret_cast<__half *>(c + (int64_t)row * g.c_row_stride)[col] =
                    __float2half_rn(acc[4 * j + e] * ACCUMULATOR_SCALE);
        }
    }
}

template <int CAPACITY>
struct hopper_family {
    static constexpr auto kernel = hopper_gemm_kernel<CAPACITY>;
    static constexpr int threads = THREADS;
};

}  // namespace

extern "C" int nvfp4_hopper_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                   int32_t num_entries, int32_t total_tiles, void *stream) {
    return launch_grouped<hopper_family>(host_entries, device_table, num_entries, total_tiles, stream);
}
