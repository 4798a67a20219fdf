// weight_decode_probe.cu: the steady state of the other Hopper layout, the roles of the per-tile Hopper kernel
// swapped: tokens on wgmma's register side, weights decoded once into shared memory on the n side. Measures
// clocks per 64-K block against the tensor floor, and counts wrong accumulators. Per CTA (one per SM, every
// SM busy), per 64-K block:
//  - the decoder warpgroups (DECODER_WGS: 1 or 2) decode 256 weight rows x 64 K of e2m1 (thread per row: the
//    row body of the kernel's run_token_decoder, copied here so that DECODE can swap its decode) into one of
//    RING 128B-swizzled fp16 tiles and arrive on its `full` mbarrier;
//  - two consumer warpgroups of 64 tokens each decode their A fragments (as the kernel's consumers do) and
//    issue 2 x wgmma m64n128k16 per k16 step against the tile (256 weight rows), wait_group 1, arrive on `empty`.
// The packed operands sit in shared memory from the start (no copies, no scheduling, no epilogue), so this is
// the best case of that layout; tensor floor 1024 clocks a block. The data make every output a known sum, so
// `bad` counts wrong accumulators (0 expected with DECODE=1, MMA=1; the timing-only variants are wrong).
// Knobs (-D, through FLAGS of dev/Makefile): DECODE 1 exact (kernels/nvfp4.cuh), 2 no scale multiply (bits and
// sign only: 4 ops a pair), 3 magnitude bits only (2 ops a pair), 0 none; MMA 0 drops the wgmma; TOKEN_DECODE 0
// drops the consumers' fragment decode; STORE 0 drops the decoded tile's stores (the values stay in
// registers); SS takes wgmma's A from a fixed decoded token tile in shared memory instead of registers (fits
// with RING 3).
// Build: make -C dev weight_decode_probe [FLAGS="-DSS -DRING=3"] (dev/README.md), then run
// /tmp/nvfp4_dev/weight_decode_probe on an H200.
#include <stdint.h>
#include <stdio.h>

#include "nvfp4.cuh"
#include "sm90_ptx.cuh"
#include "wgmma_rs.cuh"
#include "wgmma_ss.cuh"

#ifndef DECODER_WGS
#define DECODER_WGS 2
#endif
#ifndef DECODE
#define DECODE 1
#endif
#ifndef MMA
#define MMA 1
#endif
#ifndef TOKEN_DECODE
#define TOKEN_DECODE 1
#endif
#ifndef RING
#define RING 4
#endif
#ifndef STORE
#define STORE 1
#endif

constexpr int KBLOCK = 64;      // K elements per block: 4 scale groups a row
constexpr int ROW_BYTES = 128;  // a packed row's share of one source stage: 4 blocks, as the kernel stages them
constexpr int WEIGHT_ROWS = 256, TOKEN_ROWS = 128;
constexpr int SOURCE_STAGES = 2, BLOCKS = 2000;
constexpr int THREADS = 128 * (2 + DECODER_WGS), DECODER_THREADS = 128 * DECODER_WGS;
// setmaxnreg: the launch holds THREADS x (65536 / THREADS rounded down to 8); ptxas needs the consumers' wgmma
// operands to fit the launch's count too, which is why the n = 256 tile runs as two n = 128 halves.
constexpr int LAUNCH_REGISTERS = 65536 / THREADS / 8 * 8;
constexpr int DECODER_REGISTERS = DECODER_WGS == 1 ? 104 : 64;
constexpr int CONSUMER_REGISTERS = DECODER_WGS == 1 ? 200 : 192;
static_assert(DECODER_THREADS * DECODER_REGISTERS + 256 * CONSUMER_REGISTERS <= THREADS * LAUNCH_REGISTERS,
              "setmaxnreg.inc waits forever for registers the launch does not hold");

// Byte offset, inside a staged row of ROW_BYTES, of 16-byte chunk `chunk` under the 128-byte swizzle that the
// kernel's bulk tensor copies write (chunk c of row r at chunk c ^ (r % 8)).
__device__ __forceinline__ int staged_chunk(int row, int chunk) { return (chunk ^ (row & 7)) * 16; }

struct probe_shared {
    __half decoded[RING][WEIGHT_ROWS * KBLOCK];
    uint8_t weights[SOURCE_STAGES][WEIGHT_ROWS * ROW_BYTES];
    uint8_t tokens[TOKEN_ROWS * ROW_BYTES];
    uint8_t weight_scales[SOURCE_STAGES][4][WEIGHT_ROWS / 128][NVFP4_SF_ATOM_BYTES];
    uint8_t token_scales[4][NVFP4_SF_ATOM_BYTES];
#ifdef SS
    __half token_tiles[2][64 * KBLOCK];
#endif
    uint64_t full[RING], empty[RING];
};

// 8 e2m1 values and one scale to 4 half2 pairs, per DECODE.
__device__ __forceinline__ void decode_word(uint32_t x, __half2 scale, uint32_t (&out)[4]) {
#if DECODE == 1
    dequant_e2m1x8_paired(x, scale, out);
#elif DECODE == 2
    const uint32_t m = 0x0E000E00u, s = 0x80008000u;
    out[0] = ((x << 9) & m) | ((x << 12) & s), out[1] = ((x << 5) & m) | ((x << 8) & s);
    out[2] = ((x << 1) & m) | ((x << 4) & s), out[3] = ((x >> 3) & m) | (x & s);
#else
    out[0] = (x << 9) & 0x0E000E00u, out[1] = (x << 5) & 0x0E000E00u;
    out[2] = (x << 1) & 0x0E000E00u, out[3] = (x >> 3) & 0x0E000E00u;
#endif
}

// Weight value code of source stage s, block kb (so that a tile read a ring turn early gives a wrong sum).
__device__ __forceinline__ int weight_code(int stage, int kb) {
    const uint8_t codes[2][4] = {{2, 4, 5, 6}, {3, 7, 1, 2}};  // 1, 2, 3, 4 and 1.5, 6, 0.5, 1
    return codes[stage][kb];
}

__global__ void __launch_bounds__(THREADS, 1) weight_decode_probe(float *out, long long *cycles, int *bad) {
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    probe_shared &s = *reinterpret_cast<probe_shared *>(dynamic_shared + (misalignment ? 1024 - misalignment : 0));
    const int tid = threadIdx.x;
    for (int i = tid; i < SOURCE_STAGES * WEIGHT_ROWS * ROW_BYTES; i += THREADS) {
        const int stage = i / (WEIGHT_ROWS * ROW_BYTES), row = (i / ROW_BYTES) % WEIGHT_ROWS;
        const int code = weight_code(stage, (((i % ROW_BYTES) / 16) ^ (row % 8)) / 2);
        s.weights[0][i] = (uint8_t)(code | code << 4);
    }
    for (int i = tid; i < TOKEN_ROWS * ROW_BYTES; i += THREADS) s.tokens[i] = 0x22;  // 1.0
    for (int i = tid; i < (int)sizeof s.weight_scales; i += THREADS) (&s.weight_scales[0][0][0][0])[i] = 0x38;
    for (int i = tid; i < (int)sizeof s.token_scales; i += THREADS) (&s.token_scales[0][0])[i] = 0x38;
    for (int i = tid; i < RING * WEIGHT_ROWS * KBLOCK / 2; i += THREADS) reinterpret_cast<uint32_t *>(s.decoded)[i] = 0;
#ifdef SS
    for (int i = tid; i < 64 * KBLOCK; i += THREADS) reinterpret_cast<uint32_t *>(s.token_tiles)[i] = 0x20002000u;  // 1.0 * 2^-7
#endif
    if (tid == 0) {
        for (int r = 0; r < RING; r++) barrier_init(&s.full[r], DECODER_THREADS / 32), barrier_init(&s.empty[r], 8);
        fence_barrier_init();
    }
    __syncthreads();
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, tid / 128, 0);
    if (warpgroup < DECODER_WGS) {
        setmaxnreg_dec<DECODER_REGISTERS>();
        uint32_t sink = 0;  // keeps the decode alive when STORE is 0
        for (int b = 0; b < BLOCKS; b++) {
            const int tile = b % RING;
            barrier_wait(&s.empty[tile], ((b / RING) & 1) ^ 1);
#if DECODE
            const int stage = (b / 4) % SOURCE_STAGES, kb = b % 4;
            for (int row = tid; row < WEIGHT_ROWS; row += DECODER_THREADS) {
                const uint8_t *src = s.weights[stage] + row * ROW_BYTES;
                const uint4 packed[2] = {*reinterpret_cast<const uint4 *>(src + staged_chunk(row, 2 * kb)),
                                         *reinterpret_cast<const uint4 *>(src + staged_chunk(row, 2 * kb + 1))};
                __half2 scales[2];
                e4m3x4_to_scaled_half2(
                    *reinterpret_cast<const uint32_t *>(&s.weight_scales[stage][kb][row / 128][sf_atom_offset(row)]), scales);
                const uint32_t words[4][2] = {{packed[0].x, packed[0].y}, {packed[0].z, packed[0].w},
                                              {packed[1].x, packed[1].y}, {packed[1].z, packed[1].w}};
#if STORE
                uint8_t *row_bytes = reinterpret_cast<uint8_t *>(s.decoded[tile]) + row * (KBLOCK * 2);
#endif
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    uint32_t pairs[4][4];
#pragma unroll
                    for (int group = 0; group < 4; group++)
                        decode_word(words[group][half], group % 2 ? __high2half2(scales[group / 2]) : __low2half2(scales[group / 2]),
                                    pairs[group]);
#pragma unroll
                    for (int p = 0; p < 4; p++) {
#if STORE
                        *reinterpret_cast<uint4 *>(row_bytes + ((4 * half + p) ^ (row % 8)) * 16) =
                            make_uint4(pairs[0][p], pairs[1][p], pairs[2][p], pairs[3][p]);
#else
                        sink ^= pairs[0][p] ^ pairs[1][p] ^ pairs[2][p] ^ pairs[3][p];
#endif
                    }
                }
            }
            fence_shared_for_async();
#endif
            __syncwarp();
            if (tid % 32 == 0) barrier_arrive(&s.full[tile]);
        }
        if (sink == 0x9E3779B9u) out[0] = 1.0f;
        return;
    }
    setmaxnreg_inc<CONSUMER_REGISTERS>();
    const int consumer = warpgroup - DECODER_WGS, thread = tid % 128, lane = thread % 32;
    const int quad_lane = lane % 4, first_row = consumer * 64 + (thread / 32) * 16 + lane / 4;
    auto load_fragments = [&](int b, uint32_t (&frag)[4][4]) {
        const int kb = b % 4;
        uint32_t pairs[2][8];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = first_row + 8 * h;
            const uint2 packed = *reinterpret_cast<const uint2 *>(s.tokens + row * ROW_BYTES +
                                                                  staged_chunk(row, 2 * kb + quad_lane / 2) + 8 * (quad_lane % 2));
            const uint32_t scale = s.token_scales[kb][sf_atom_offset(row) + quad_lane];
#if TOKEN_DECODE
            const __half2 scale2 = __half2half2(e4m3_to_scaled_half(scale));
            dequant_e2m1x8_paired(packed.x, scale2, *reinterpret_cast<uint32_t(*)[4]>(&pairs[h][0]));
            dequant_e2m1x8_paired(packed.y, scale2, *reinterpret_cast<uint32_t(*)[4]>(&pairs[h][4]));
#else
            for (int i = 0; i < 8; i++) pairs[h][i] = (i & 1 ? packed.y : packed.x) ^ scale;
#endif
        }
#pragma unroll
        for (int ks = 0; ks < 4; ks++)
            frag[ks][0] = pairs[0][2 * ks], frag[ks][1] = pairs[1][2 * ks], frag[ks][2] = pairs[0][2 * ks + 1],
            frag[ks][3] = pairs[1][2 * ks + 1];
    };
    float acc[2][64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc[0][i] = acc[1][i] = 0.f;
    uint32_t frag_a[4][4], frag_b[4][4];
    auto step = [&](int b, const uint32_t (&frag)[4][4], uint32_t (&next)[4][4]) {
        const int tile = b % RING;
        barrier_wait(&s.full[tile], (b / RING) & 1);
#if MMA
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
#ifdef SS
            const uint64_t token_desc = swizzled_tile_descriptor(s.token_tiles[consumer] + ks * 16);
            wgmma_ss<128>::mma(acc[0], token_desc, swizzled_tile_descriptor(s.decoded[tile] + ks * 16));
            wgmma_ss<128>::mma(acc[1], token_desc, swizzled_tile_descriptor(s.decoded[tile] + 128 * KBLOCK + ks * 16));
#else
            wgmma_rs<128>::mma(acc[0], frag[ks], swizzled_tile_descriptor(s.decoded[tile] + ks * 16));
            wgmma_rs<128>::mma(acc[1], frag[ks], swizzled_tile_descriptor(s.decoded[tile] + 128 * KBLOCK + ks * 16));
#endif
        }
        wgmma_commit();
        wgmma_wait<1>();
#else
        for (int ks = 0; ks < 4; ks++) acc[0][ks] += __uint_as_float(frag[ks][0]);
#endif
        if (b >= 1 && lane == 0) barrier_arrive(&s.empty[(b - 1) % RING]);
        if (b + 1 < BLOCKS) load_fragments(b + 1, next);
    };
    load_fragments(0, frag_a);
    const long long start = clock64();
    for (int b = 0; b < BLOCKS; b += 2) step(b, frag_a, frag_b), step(b + 1, frag_b, frag_a);
    wgmma_wait<0>();
    const long long stop = clock64();
    if (thread == 0) cycles[blockIdx.x * 2 + consumer] = stop - start;
    float expected = 0.f, sum = 0.f;  // every accumulator: sum over blocks of the block's weight value x 64
    for (int b = 0; b < BLOCKS; b++) {
        const int code = weight_code((b / 4) % SOURCE_STAGES, b % 4);
        expected += (code == 1 ? 0.5f : code <= 4 ? 0.5f * code : code == 5 ? 3.f : code == 6 ? 4.f : 6.f) * 64.f;
    }
    int wrong = 0;
#pragma unroll
    for (int i = 0; i < 64; i++) {
        wrong += (acc[0][i] * ACCUMULATOR_SCALE != expected) + (acc[1][i] * ACCUMULATOR_SCALE != expected);
        sum += acc[0][i] + acc[1][i];
    }
    if (wrong) atomicAdd(bad, wrong);
    out[blockIdx.x * 256 + consumer * 128 + thread] = sum;
}

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        const cudaError_t status_ = (call);                                                                  \
        if (status_ != cudaSuccess) {                                                                        \
            printf("%s failed: %s\n", #call, cudaGetErrorString(status_));                                   \
            return 1;                                                                                        \
        }                                                                                                    \
    } while (0)

int main() {
    int sms;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    float *out;
    long long *cycles;
    int *bad;
    CHECK(cudaMalloc(&out, sms * 256 * sizeof(float)));
    CHECK(cudaMalloc(&cycles, sms * 2 * sizeof(long long)));
    CHECK(cudaMalloc(&bad, sizeof(int)));
    CHECK(cudaMemset(bad, 0, sizeof(int)));
    const size_t shared_bytes = sizeof(probe_shared) + 1024;
    CHECK(cudaFuncSetAttribute(weight_decode_probe, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared_bytes));
    weight_decode_probe<<<sms, THREADS, shared_bytes>>>(out, cycles, bad);  // warm-up
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemset(bad, 0, sizeof(int)));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    const int repeats = 5;
    CHECK(cudaEventRecord(start));
    for (int r = 0; r < repeats; r++) weight_decode_probe<<<sms, THREADS, shared_bytes>>>(out, cycles, bad);
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    long long first_cta[2];
    int wrong;
    CHECK(cudaMemcpy(first_cta, cycles, sizeof first_cta, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(&wrong, bad, sizeof wrong, cudaMemcpyDeviceToHost));
    const double floor_clocks = 2.0 * 4 * 64.0 * WEIGHT_ROWS * 16 / 2048;  // both consumers' wgmma per block
    const double per_block = (double)first_cta[0] / BLOCKS;
    const double flops = 2.0 * sms * BLOCKS * (double)TOKEN_ROWS * WEIGHT_ROWS * KBLOCK * repeats;
    printf("decoder warpgroups %d, DECODE %d, MMA %d, TOKEN_DECODE %d, ring %d: %.0f clocks a block (tensor floor %.0f: "
           "%.1f%%), %.0f TFLOP/s, wrong accumulators %d\n",
           DECODER_WGS, DECODE, MMA, TOKEN_DECODE, RING, per_block, floor_clocks, 100.0 * floor_clocks / per_block,
           flops / (ms * 1e-3) / 1e12, wrong);
    return 0;
}

