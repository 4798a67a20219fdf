// split_roles_probe.cu: can one warpgroup decode packed e2m1 weights into shared memory fast enough for two
// others that only issue wgmma with A from shared memory, at the shared-memory traffic that hand-over costs?
//
// The register-sourced kernel (hopper_streamk.cu) makes each consumer both decode and issue wgmma, and its k16
// step costs ~150 + 0.55 N clocks (docs/performance.md, sections 2.5-2.6); section 2.1 measured warpgroups that
// only multiply at 99% of the tensor rate and warpgroups that only decode at 50-55 elements a clock. This probe
// runs the hand-over between them. One CTA per SM, every SM busy, operands already in shared memory (no copies,
// no scheduling, no epilogue): 128 packed weight rows x 16 64-K blocks with their scales, two 64-K blocks of fp16
// tokens (up to 256 rows, 128-byte swizzle, K in the order of weight_k_of_position), and a ring of A_STAGES
// decoded weight tiles.
//  - Warpgroup 0, the decoder: per 64-K block, thread r decodes row r (decode_row_block: the token pre-pass's
//    decode) into the next free stage, 128 bytes a row in the 128-byte swizzle (the layout wgmma reads B in),
//    fences the writes for the async proxy, and marks the stage full.
//  - Warpgroups 1 and 2, the multipliers, 64 weight rows each: per 64-K block they wait for the stage, issue its
//    4 wgmma m64nNk16 (A and B from shared memory), and free the stage before once its wgmma have finished.
// Variants: full (the above), mma (the multipliers on a stage decoded once: the reachable rate with this traffic
// less the decoder's writes), decode (the decoder alone). N is chosen at run time (48, 128 or 240). Each CTA
// times its loop with clock64; the ideal is N clocks per k16 step (two m64nNk16 at 2048 fp16 FMA a clock). Block
// 0's accumulators are checked against a float64 reference (every e2m1 code, scales over the e4m3 range).
//
// Build and run on an H200 (dev/README.md): make -C dev split_roles_probe && /tmp/nvfp4_dev/split_roles_probe
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
#include "wgmma_ss.cuh"

constexpr int ROWS = 128;                            // weight rows: two multiplier warpgroups of 64
constexpr int KBLOCKS_STORED = 16;                   // 64-K blocks of weights before the loop wraps
constexpr int TOKEN_BLOCKS = 2;                      // 64-K blocks of tokens before the loop wraps
constexpr int MAX_N = 256;
constexpr int A_STAGES = 3;                          // decoded 64-K blocks in flight between the roles
constexpr int PACKED_BYTES = KBLOCKS_STORED * ROWS * 32;   // [kblock][row][32 bytes]
constexpr int SCALE_BYTES = KBLOCKS_STORED * ROWS * 4;     // [kblock][row][4 scale bytes]
constexpr int TOKEN_BLOCK_BYTES = MAX_N * 128;             // [row][64 halves], 128-byte swizzle
constexpr int A_STAGE_BYTES = ROWS * 128;                  // [row][64 halves], 128-byte swizzle
constexpr int TOKEN_OFFSET = 0;                            // 1024-byte aligned regions first
constexpr int A_OFFSET = TOKEN_OFFSET + TOKEN_BLOCKS * TOKEN_BLOCK_BYTES;
constexpr int PACKED_OFFSET = A_OFFSET + A_STAGES * A_STAGE_BYTES;
constexpr int SCALE_OFFSET = PACKED_OFFSET + PACKED_BYTES;
constexpr int BARRIER_OFFSET = SCALE_OFFSET + SCALE_BYTES;
constexpr int IMAGE_BYTES = A_OFFSET;                      // what the host provides: tokens, then (below) weights
constexpr int SHARED_BYTES = BARRIER_OFFSET + 2 * A_STAGES * 8 + 1024;  // + room to align to 1024 bytes
constexpr int THREADS = 384;

// NO_FENCE and NO_HANDSHAKE are timing-only: the full hand-over without the proxy fence, and both roles running
// at once with no barriers at all (the contention for issue slots and shared memory alone).
enum Variant { FULL, MMA_ONLY, DECODE_ONLY, NO_FENCE, NO_HANDSHAKE };

__host__ __device__ constexpr bool handshakes(int variant) { return variant == FULL || variant == NO_FENCE; }

template <int VARIANT>
__device__ __forceinline__ void decoder_loop(uint8_t *a_stages, const uint8_t *packed, const uint8_t *scales,
                                             uint64_t *full, uint64_t *empty, int kblocks) {
    decoder_ring_loop<ROWS, KBLOCKS_STORED, A_STAGES, A_STAGE_BYTES, handshakes(VARIANT), VARIANT == FULL>(
        a_stages, packed, scales, full, empty, threadIdx.x, kblocks);
}

template <int N, int VARIANT>
__device__ __forceinline__ void multiplier_loop(const uint8_t *a_stages, const uint8_t *tokens, uint64_t *full,
                                                uint64_t *empty, int kblocks, float *out) {
    const int wg = threadIdx.x / 128 - 1, thread = threadIdx.x % 128, lane = thread % 32;
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; i++) acc[i] = 0.0f;
    uint32_t parity = 0;
    for (int kb = 0; kb < kblocks; kb++) {
        const int stage = VARIANT == MMA_ONLY ? 0 : kb % A_STAGES;
        if (handshakes(VARIANT)) barrier_wait(&full[stage], parity);
        const uint64_t a_desc = swizzled_tile_descriptor(a_stages + stage * A_STAGE_BYTES + wg * 64 * 128);
        const uint64_t b_desc = swizzled_tile_descriptor(tokens + (kb % TOKEN_BLOCKS) * TOKEN_BLOCK_BYTES);
        wgmma_fence();
#pragma unroll
        for (int step = 0; step < 4; step++)  // a k16 step is 32 bytes further along K: 2 in the address field
            wgmma_ss<N>::mma(acc, a_desc + 2 * step, b_desc + 2 * step);
        wgmma_commit();
        wgmma_wait<1>();  // the previous block's group has finished: its stage is free
        if (handshakes(VARIANT)) release_previous_stage<A_STAGES>(empty, kb, lane);
        if (handshakes(VARIANT) && stage == A_STAGES - 1) parity ^= 1;
    }
    wgmma_wait<0>();
    // Accumulator d[4i + e]: row 16 w + lane / 4 + 8 (e / 2) of the warpgroup's 64, token 8i + 2 (lane % 4) + e % 2.
    if (blockIdx.x == 0) {
        const int r0 = wg * 64 + (thread / 32) * 16 + lane / 4;
#pragma unroll
        for (int i = 0; i < N / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) out[(r0 + 8 * (e / 2)) * MAX_N + 8 * i + 2 * (lane % 4) + e % 2] = acc[4 * i + e];
    }
}

template <int VARIANT>
__global__ void __launch_bounds__(THREADS, 1)
    probe_kernel(const uint8_t *image, const uint8_t *weights, int n, int kblocks, float *out, long long *clocks) {
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    uint8_t *base = dynamic_shared + (misalignment ? 1024 - misalignment : 0);
    for (int i = threadIdx.x * 16; i < IMAGE_BYTES; i += blockDim.x * 16)
        *reinterpret_cast<uint4 *>(base + i) = *reinterpret_cast<const uint4 *>(image + i);
    for (int i = threadIdx.x * 16; i < PACKED_BYTES + SCALE_BYTES; i += blockDim.x * 16)
        *reinterpret_cast<uint4 *>(base + PACKED_OFFSET + i) = *reinterpret_cast<const uint4 *>(weights + i);
    uint8_t *a_stages = base + A_OFFSET;
    const uint8_t *tokens = base + TOKEN_OFFSET, *packed = base + PACKED_OFFSET, *scales = base + SCALE_OFFSET;
    uint64_t *full = reinterpret_cast<uint64_t *>(base + BARRIER_OFFSET), *empty = full + A_STAGES;
    if (threadIdx.x == 0) {
        for (int s = 0; s < A_STAGES; s++) {
            barrier_init(&full[s], 4);   // one arrival per decoder warp
            barrier_init(&empty[s], 8);  // one per multiplier warp
        }
        fence_barrier_init();
    }
    __syncthreads();
    if (VARIANT == MMA_ONLY && threadIdx.x < 128) decode_row_into<ROWS, KBLOCKS_STORED>(a_stages, packed, scales, threadIdx.x, 0);
    fence_shared_for_async();
    __syncthreads();
    const long long start = clock64();
    const int role = __shfl_sync(0xFFFFFFFFu, threadIdx.x / 128, 0);
    if (role == 0) {
        if (VARIANT != MMA_ONLY) decoder_loop<VARIANT>(a_stages, packed, scales, full, empty, kblocks);
    } else if (VARIANT != DECODE_ONLY) {
        switch (__shfl_sync(0xFFFFFFFFu, n, 0)) {
        case 48: multiplier_loop<48, VARIANT>(a_stages, tokens, full, empty, kblocks, out); break;
        case 128: multiplier_loop<128, VARIANT>(a_stages, tokens, full, empty, kblocks, out); break;
        default: multiplier_loop<240, VARIANT>(a_stages, tokens, full, empty, kblocks, out); break;
        }
    }
    if (threadIdx.x % 128 == 0) clocks[gridDim.x + 3 * blockIdx.x + role] = clock64() - start;  // this role's loop
    __syncthreads();
    if (threadIdx.x == 0) clocks[blockIdx.x] = clock64() - start;
}

// ---- host ----------------------------------------------------------------------------------------------------

int main() {
    int sms = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    srand(2027);
    const probe_weights weight(ROWS, KBLOCKS_STORED);
    std::vector<uint8_t> weights(PACKED_BYTES + SCALE_BYTES);
    weight.write(weights.data(), weights.data() + PACKED_BYTES);
    // Tokens: small fp16 values per (block, row, position).
    std::vector<double> token(TOKEN_BLOCKS * MAX_N * 64);
    std::vector<uint8_t> image(IMAGE_BYTES);
    for (int b = 0; b < TOKEN_BLOCKS; b++)
        for (int n = 0; n < MAX_N; n++)
            for (int p = 0; p < 64; p++) {
                const double v = ((rand() % 33) - 16) / 16.0;
                token[(b * MAX_N + n) * 64 + p] = v;
                const __half h = __double2half(v);
                memcpy(image.data() + TOKEN_OFFSET + b * TOKEN_BLOCK_BYTES + swizzled(n, p / 8) + (p % 8) * 2, &h, 2);
            }

    uint8_t *d_image, *d_weights;
    float *d_out;
    long long *d_clocks;
    CHECK(cudaMalloc(&d_image, IMAGE_BYTES));
    CHECK(cudaMalloc(&d_weights, weights.size()));
    CHECK(cudaMalloc(&d_out, ROWS * MAX_N * sizeof(float)));
    CHECK(cudaMalloc(&d_clocks, sms * 4 * sizeof(long long)));
    CHECK(cudaMemcpy(d_image, image.data(), IMAGE_BYTES, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_weights, weights.data(), weights.size(), cudaMemcpyHostToDevice));
    struct variant {
        void (*kernel)(const uint8_t *, const uint8_t *, int, int, float *, long long *);
        const char *name;
        int variant;
    } variants[] = {{probe_kernel<FULL>, "full", FULL}, {probe_kernel<MMA_ONLY>, "mma", MMA_ONLY},
                    {probe_kernel<DECODE_ONLY>, "decode", DECODE_ONLY}, {probe_kernel<NO_FENCE>, "nofence", NO_FENCE},
                    {probe_kernel<NO_HANDSHAKE>, "nosync", NO_HANDSHAKE}};
    const int widths[] = {48, 128, 240};
    const int check_kblocks = 2 * KBLOCKS_STORED, timed_kblocks = 1024;
    printf("variant   N  clocks a k16 step (slowest CTA)  of ideal  decoder warpgroup  multipliers  check\n");
    for (const variant &v : variants) {
        CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SHARED_BYTES));
        for (int n : widths) {
            // Check: block 0's accumulators after check_kblocks blocks against float64 (the full variant only; the
            // others compute on a fixed or absent stage).
            const char *verdict = "-";
            if (v.variant == FULL) {
                CHECK(cudaMemset(d_out, 0xFF, ROWS * MAX_N * sizeof(float)));  // NaN until written
                v.kernel<<<sms, THREADS, SHARED_BYTES>>>(d_image, d_weights, n, check_kblocks, d_out, d_clocks);
                CHECK(cudaGetLastError());
                CHECK(cudaDeviceSynchronize());
                std::vector<float> out(ROWS * MAX_N);
                CHECK(cudaMemcpy(out.data(), d_out, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
                double worst = 0;
                for (int r = 0; r < ROWS; r++)
                    for (int t = 0; t < n; t++)
                        worst = std::max(worst, weight.relative_error(out[r * MAX_N + t], r, check_kblocks, [&](int kb, int p) {
                            return token[((kb % TOKEN_BLOCKS) * MAX_N + t) * 64 + p];
                        }));
                verdict = worst < 1e-5 ? "ok" : "WRONG";
                if (worst >= 1e-5) printf("  N = %d: worst |err| / sum |terms| = %.3g\n", n, worst);
            }
            v.kernel<<<sms, THREADS, SHARED_BYTES>>>(d_image, d_weights, n, timed_kblocks, d_out, d_clocks);
            CHECK(cudaGetLastError());
            CHECK(cudaDeviceSynchronize());
            std::vector<long long> clocks(sms * 4);
            CHECK(cudaMemcpy(clocks.data(), d_clocks, clocks.size() * sizeof(long long), cudaMemcpyDeviceToHost));
            long long slowest = 0, decoder = 0, multiplier = 0;
            for (int b = 0; b < sms; b++) {
                slowest = std::max(slowest, clocks[b]);
                decoder = std::max(decoder, clocks[sms + 3 * b]);
                multiplier = std::max(multiplier, std::max(clocks[sms + 3 * b + 1], clocks[sms + 3 * b + 2]));
            }
            const double steps = 4.0 * timed_kblocks;
            printf("%-7s %3d  %10.1f  %30.1f%%  %10.1f  %10.1f  %s\n", v.name, n, slowest / steps, 100.0 * n * steps / slowest,
                   decoder / steps, multiplier / steps, verdict);
        }
    }
    return 0;
}
