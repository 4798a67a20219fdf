// small_m_probe.cu: at small M (at most 64 tokens a group), can a CTA stream decoded weights through wgmma at the
// HBM's pace (~33 weight elements a clock per SM on an H200) with the roles swapped: tokens as wgmma's A from
// registers (m64), decoded weights as B from shared memory (n256)?
//
// The stream-K kernel puts 128 weight rows on wgmma's A side and decodes them in the consumers' registers; at
// widths <= 48 a k16 step costs ~175 clocks for 2048 weights (~12 a clock), because every decode instruction a
// consumer issues slows the wgmma beside it (docs/performance.md, sections 2.1 and 2.6). Here no warp that issues
// wgmma decodes: two warpgroups decode 256 weight rows per 64-K block into a shared-memory ring of swizzled fp16
// tiles, one warpgroup issues wgmma m64n256k16 with the tokens' A fragments (loaded per k16 step from shared
// memory) and the ring's tile as B. Per 4096 weights the hand-over moves 8 KB into shared memory and 8 KB out of
// it, plus 2 KB of token fragments: 18 KB at 128 bytes a clock is ~141 clocks, against 128 clocks of tensor work
// (64 x 256 x 16 at 2048 FMA a clock): ~29 weight elements a clock if everything overlaps.
//
// One CTA per SM, every SM busy, operands already in shared memory (no copies, no scheduling, no epilogue): 256
// packed weight rows x 8 64-K blocks with their scales, two 64-K blocks of token fragments, a ring of A_STAGES
// decoded tiles.
//  - Warpgroups 0 and 1, the decoders: per 64-K block, thread r decodes weight row r (decode_row_block, the
//    token pre-pass's decode) into the next free stage in the 128-byte swizzle, fences the stores for the async
//    proxy and marks the stage full.
//  - Warpgroup 2, the multiplier: per 64-K block it waits for the stage, issues 4 wgmma m64n256k16 (A: the 64
//    tokens' fragments for that k16 step; B: the stage), and frees the stage before once its wgmma have finished.
// Variants: full; mma (the multiplier on a stage decoded once); decode (the decoders alone); nofence (the full
// hand-over without the proxy fence, timing only). Each role times its loop with clock64. Block 0's accumulators
// (full variant) are checked against a float64 reference (every e2m1 code, scales over the e4m3 range).
//
// Build and run on an H200 (dev/README.md): make -C dev small_m_probe && /tmp/nvfp4_dev/small_m_probe
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "probe_weights.cuh"
#include "sm90_ptx.cuh"
#include "wgmma_rs.cuh"

constexpr int ROWS = 256;                  // weight rows: wgmma's n
constexpr int TOKENS = 64;                 // wgmma's m
constexpr int KBLOCKS_STORED = 8;          // 64-K blocks of weights before the loop wraps
constexpr int TOKEN_BLOCKS = 2;            // 64-K blocks of token fragments before the loop wraps
constexpr int A_STAGES = 3;                // decoded 64-K blocks in flight between the roles
constexpr int DECODER_THREADS = ROWS;      // one weight row per decoder thread
constexpr int THREADS = DECODER_THREADS + 128;
constexpr int DECODER_REGISTERS = 72;      // setmaxnreg: 256 x 72 + 128 x 240 = 49152 of the 64512 the launch holds
constexpr int MULTIPLIER_REGISTERS = 240;
constexpr int PACKED_BYTES = KBLOCKS_STORED * ROWS * 32;              // [kblock][row][32 bytes]
constexpr int SCALE_BYTES = KBLOCKS_STORED * ROWS * 4;                // [kblock][row][4 scale bytes]
constexpr int FRAGMENT_BYTES = TOKEN_BLOCKS * 4 * 128 * 16;           // [block][step][thread][4 words]
constexpr int STAGE_BYTES = ROWS * 128;                               // [row][64 halves], 128-byte swizzle
constexpr int STAGE_OFFSET = 0;                                       // 1024-byte aligned first
constexpr int FRAGMENT_OFFSET = STAGE_OFFSET + A_STAGES * STAGE_BYTES;
constexpr int PACKED_OFFSET = FRAGMENT_OFFSET + FRAGMENT_BYTES;
constexpr int SCALE_OFFSET = PACKED_OFFSET + PACKED_BYTES;
constexpr int BARRIER_OFFSET = SCALE_OFFSET + SCALE_BYTES;
constexpr int IMAGE_BYTES = FRAGMENT_BYTES + PACKED_BYTES + SCALE_BYTES;  // what the host provides, from FRAGMENT_OFFSET
constexpr int SHARED_BYTES = BARRIER_OFFSET + 2 * A_STAGES * 8 + 1024;   // + room to align to 1024 bytes

enum Variant { FULL, MMA_ONLY, DECODE_ONLY, NO_FENCE };

__host__ __device__ constexpr bool handshakes(int variant) { return variant == FULL || variant == NO_FENCE; }

template <int VARIANT>
__device__ __forceinline__ void decoder_loop(uint8_t *stages, const uint8_t *packed, const uint8_t *scales,
                                             uint64_t *full, uint64_t *empty, int kblocks) {
    decoder_ring_loop<ROWS, KBLOCKS_STORED, A_STAGES, STAGE_BYTES, handshakes(VARIANT), VARIANT == FULL>(
        stages, packed, scales, full, empty, threadIdx.x, kblocks);
}

template <int VARIANT>
__device__ __forceinline__ void multiplier_loop(const uint8_t *stages, const uint8_t *fragments, uint64_t *full,
                                                uint64_t *empty, int kblocks, float *out) {
    const int thread = threadIdx.x - DECODER_THREADS, lane = thread % 32;
    float acc[ROWS / 2];
#pragma unroll
    for (int i = 0; i < ROWS / 2; i++) acc[i] = 0.0f;
    uint32_t parity = 0;
    for (int kb = 0; kb < kblocks; kb++) {
        const int stage = VARIANT == MMA_ONLY ? 0 : kb % A_STAGES;
        const uint4 *block = reinterpret_cast<const uint4 *>(fragments) + (kb % TOKEN_BLOCKS) * 4 * 128 + thread;
        uint32_t a[4][4];
#pragma unroll
        for (int step = 0; step < 4; step++) {
            const uint4 f = block[step * 128];
            a[step][0] = f.x, a[step][1] = f.y, a[step][2] = f.z, a[step][3] = f.w;
        }
        if (handshakes(VARIANT)) barrier_wait(&full[stage], parity);
        const uint64_t b_desc = swizzled_tile_descriptor(stages + stage * STAGE_BYTES);
        wgmma_fence();
#pragma unroll
        for (int step = 0; step < 4; step++)  // a k16 step is 32 bytes further along K: 2 in the address field
            wgmma_rs<ROWS>::mma(acc, a[step], b_desc + 2 * step);
        wgmma_commit();
        wgmma_wait<1>();  // the previous block's group has finished: its stage is free
        if (handshakes(VARIANT)) release_previous_stage<A_STAGES>(empty, kb, lane);
        if (handshakes(VARIANT) && stage == A_STAGES - 1) parity ^= 1;
    }
    wgmma_wait<0>();
    // Accumulator d[4i + e]: token 16 w + lane / 4 + 8 (e / 2), weight row 8i + 2 (lane % 4) + e % 2.
    if (blockIdx.x == 0) {
        const int t0 = (thread / 32) * 16 + lane / 4;
#pragma unroll
        for (int i = 0; i < ROWS / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) out[(t0 + 8 * (e / 2)) * ROWS + 8 * i + 2 * (lane % 4) + e % 2] = acc[4 * i + e];
    }
}

template <int VARIANT>
__global__ void __launch_bounds__(THREADS, 1) probe_kernel(const uint8_t *image, int kblocks, float *out,
                                                             long long *clocks) {
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    uint8_t *base = dynamic_shared + (misalignment ? 1024 - misalignment : 0);
    for (int i = threadIdx.x * 16; i < IMAGE_BYTES; i += blockDim.x * 16)
        *reinterpret_cast<uint4 *>(base + FRAGMENT_OFFSET + i) = *reinterpret_cast<const uint4 *>(image + i);
    uint8_t *stages = base + STAGE_OFFSET;
    const uint8_t *fragments = base + FRAGMENT_OFFSET, *packed = base + PACKED_OFFSET, *scales = base + SCALE_OFFSET;
    uint64_t *full = reinterpret_cast<uint64_t *>(base + BARRIER_OFFSET), *empty = full + A_STAGES;
    if (threadIdx.x == 0) {
        for (int s = 0; s < A_STAGES; s++) {
            barrier_init(&full[s], DECODER_THREADS / 32);  // one arrival per decoder warp
            barrier_init(&empty[s], 4);                    // one per multiplier warp
        }
        fence_barrier_init();
    }
    __syncthreads();
    if (VARIANT == MMA_ONLY && threadIdx.x < DECODER_THREADS) decode_row_into<ROWS, KBLOCKS_STORED>(stages, packed, scales, threadIdx.x, 0);
    fence_shared_for_async();
    __syncthreads();
    const bool decoder = __shfl_sync(0xFFFFFFFFu, threadIdx.x < DECODER_THREADS, 0);
    // The multiplier's 128 accumulators and two blocks of token fragments in flight need more than the 168
    // registers a thread gets at launch: the decoders hand theirs over. Each role times its own loop (no code
    // after the roles part, which would hold every warp to the larger register count).
    long long *role_clock = &clocks[3 * blockIdx.x + threadIdx.x / 128];
    if (decoder) {
        setmaxnreg_dec<DECODER_REGISTERS>();
        const long long start = clock64();
        if (VARIANT != MMA_ONLY) decoder_loop<VARIANT>(stages, packed, scales, full, empty, kblocks);
        if (threadIdx.x % 128 == 0) *role_clock = clock64() - start;
    } else {
        setmaxnreg_inc<MULTIPLIER_REGISTERS>();
        const long long start = clock64();
        if (VARIANT != DECODE_ONLY) multiplier_loop<VARIANT>(stages, fragments, full, empty, kblocks, out);
        if (threadIdx.x % 128 == 0) *role_clock = clock64() - start;
    }
}

// ---- host ----------------------------------------------------------------------------------------------------

int main() {
    int sms = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    srand(2028);
    const probe_weights weight(ROWS, KBLOCKS_STORED);
    std::vector<uint8_t> image(IMAGE_BYTES);
    weight.write(image.data() + (PACKED_OFFSET - FRAGMENT_OFFSET), image.data() + (SCALE_OFFSET - FRAGMENT_OFFSET));
    // Tokens: small fp16 values per (block, token, position), laid out as wgmma's m64k16 A fragments: thread
    // 32 w + l holds, for step s, rows 16 w + l / 4 (+8) and positions 16 s + 2 (l % 4) (+1) (+8).
    std::vector<double> token(TOKEN_BLOCKS * TOKENS * 64);
    for (auto &v : token) v = ((rand() % 33) - 16) / 16.0;
    for (int b = 0; b < TOKEN_BLOCKS; b++)
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 128; t++) {
                const int w = t / 32, l = t % 32;
                for (int reg = 0; reg < 4; reg++)
                    for (int half = 0; half < 2; half++) {
                        const int row = 16 * w + l / 4 + 8 * (reg % 2), p = 16 * s + 2 * (l % 4) + 8 * (reg / 2) + half;
                        const __half h = __double2half(token[(b * TOKENS + row) * 64 + p]);
                        memcpy(image.data() + ((b * 4 + s) * 128 + t) * 16 + reg * 4 + half * 2, &h, 2);
                    }
            }

    uint8_t *d_image;
    float *d_out;
    long long *d_clocks;
    CHECK(cudaMalloc(&d_image, IMAGE_BYTES));
    CHECK(cudaMalloc(&d_out, TOKENS * ROWS * sizeof(float)));
    CHECK(cudaMalloc(&d_clocks, sms * 3 * sizeof(long long)));
    CHECK(cudaMemcpy(d_image, image.data(), IMAGE_BYTES, cudaMemcpyHostToDevice));
    struct variant {
        void (*kernel)(const uint8_t *, int, float *, long long *);
        const char *name;
        int variant;
    } variants[] = {{probe_kernel<FULL>, "full", FULL}, {probe_kernel<MMA_ONLY>, "mma", MMA_ONLY},
                    {probe_kernel<DECODE_ONLY>, "decode", DECODE_ONLY}, {probe_kernel<NO_FENCE>, "nofence", NO_FENCE}};
    const int check_kblocks = 2 * KBLOCKS_STORED, timed_kblocks = 2048;
    const double per_block = (double)ROWS * 64;  // weight elements of a 64-K block
    printf("variant  weights/clk/SM (slowest CTA)  clocks per 64-K block  decoders  multiplier  check\n");
    printf("(ideal: tensor rate at m64 = 32.0 weights/clk; HBM at 4.8 TB/s and 1.98 GHz ~32.6)\n");
    for (const variant &v : variants) {
        CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SHARED_BYTES));
        const char *verdict = "-";
        if (v.variant == FULL) {
            CHECK(cudaMemset(d_out, 0xFF, TOKENS * ROWS * sizeof(float)));  // NaN until written
            v.kernel<<<sms, THREADS, SHARED_BYTES>>>(d_image, check_kblocks, d_out, d_clocks);
            CHECK(cudaGetLastError());
            CHECK(cudaDeviceSynchronize());
            std::vector<float> out(TOKENS * ROWS);
            CHECK(cudaMemcpy(out.data(), d_out, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
            double worst = 0;
            for (int t = 0; t < TOKENS; t++)
                for (int r = 0; r < ROWS; r++)
                    worst = std::max(worst, weight.relative_error(out[t * ROWS + r], r, check_kblocks, [&](int kb, int p) {
                        return token[((kb % TOKEN_BLOCKS) * TOKENS + t) * 64 + p];
                    }));
            verdict = worst < 1e-5 ? "ok" : "WRONG";
            if (worst >= 1e-5) printf("  worst |err| / sum |terms| = %.3g\n", worst);
        }
        v.kernel<<<sms, THREADS, SHARED_BYTES>>>(d_image, timed_kblocks, d_out, d_clocks);
        CHECK(cudaGetLastError());
        CHECK(cudaDeviceSynchronize());
        std::vector<long long> clocks(sms * 3);
        CHECK(cudaMemcpy(clocks.data(), d_clocks, clocks.size() * sizeof(long long), cudaMemcpyDeviceToHost));
        long long decoders = 0, multiplier = 0;
        for (int b = 0; b < sms; b++) {
            decoders = std::max(decoders, std::max(clocks[3 * b], clocks[3 * b + 1]));
            multiplier = std::max(multiplier, clocks[3 * b + 2]);
        }
        const long long slowest = std::max(decoders, multiplier);
        printf("%-8s %10.1f  %30.1f  %8.1f  %10.1f  %s\n", v.name, per_block * timed_kblocks / slowest,
               (double)slowest / timed_kblocks, (double)decoders / timed_kblocks, (double)multiplier / timed_kblocks,
               verdict);
    }
    return 0;
}
