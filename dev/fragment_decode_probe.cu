// fragment_decode_probe.cu: can consumer warpgroups decode packed e2m1 weights into wgmma's A fragments one k16
// step at a time, under the previous step's asynchronous wgmma, and still keep the tensor cores busy?
//
// One CTA per SM, every SM busy, operands already in shared memory (no copies, no scheduling, no epilogue):
// up to 256 packed weight rows x 1024 K with their blocked scale atoms, and two 64-K blocks of fp16 tokens (up to
// 256 rows, 128-byte swizzle) in the K order of weight_k_of_position. Each warpgroup owns 64 weight rows; per k16
// step it issues wgmma m64nNk16 (A from registers) on fragments decoded earlier, then decodes later fragments
// (weight_fragments.cuh) while that wgmma runs. The kernel takes N at run time (40, 64, 128 or 248) and branches
// once into a loop compiled for that N, as a grouped kernel would.
// Variants (enum Variant), with 2, 3 or 4 consumer warpgroups: full (2 fragment sets, wait for step s-1), deep
// (a set per step, wait for s-3), pair (two steps decoded together), block (a whole 64-K block decoded after its
// 4 wgmma), mma (fragments fixed: the reachable tensor rate), touch (mma plus 4 dependent writes of the next set
// per step), decode (no wgmma: the decoder's own rate), intsc / nosc (full with the scale applied by an integer
// op, or not at all: wrong values, timing only) and split (two warpgroups only multiply while two only decode).
// Each CTA times its loop with clock64; the ideal is N/2 clocks per wgmma m64nNk16 (2048 fp16 FMA per clock per
// SM). A first pass checks every decoding variant's accumulators against a float64 reference over every e2m1
// code and scales over the whole e4m3 range. Results: docs/performance.md, section 2.1.
//
// Build and run on an H200 (dev/README.md): make -C dev fragment_decode_probe && /tmp/nvfp4_dev/fragment_decode_probe
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "probe_host.h"
#include "sm90_ptx.cuh"
#include "weight_fragments.cuh"
#include "wgmma_rs.cuh"

constexpr int ROWS = 256;                          // weight rows in shared memory: up to 4 warpgroups of 64
constexpr int ROW_BYTES = 128;                     // a packed row's share of one stage: 4 64-K blocks
constexpr int WEIGHT_STAGES = 4;                   // 4 stages x 256 K = 1024 K of weights in shared memory
constexpr int WEIGHT_KBLOCKS = WEIGHT_STAGES * 4;  // 64-K blocks of weights before the loop wraps
constexpr int TOKEN_BLOCKS = 2;                    // 64-K blocks of tokens before the loop wraps
constexpr int MAX_N = 256;
constexpr int STAGE_BYTES = ROWS * ROW_BYTES;      // 16 KB
constexpr int TOKEN_BLOCK_BYTES = MAX_N * 128;     // 32 KB: 256 rows x 64 fp16
constexpr int WEIGHT_BYTES = WEIGHT_STAGES * STAGE_BYTES;
constexpr int TOKEN_BYTES = TOKEN_BLOCKS * TOKEN_BLOCK_BYTES;
constexpr int SCALE_BYTES = WEIGHT_KBLOCKS * (ROWS / 128) * 512;
constexpr int IMAGE_BYTES = WEIGHT_BYTES + TOKEN_BYTES + SCALE_BYTES;
constexpr int SHARED_BYTES = IMAGE_BYTES + 1024;  // + room to align to the swizzle's 1024-byte atoms

enum Variant { FULL, MMA_ONLY, DECODE_ONLY, FULL_DEEP, FULL_PAIR, FULL_BLOCK, MMA_TOUCH, FULL_INT_SCALE, FULL_NO_SCALE, SPLIT_ROLES };

// FULL's fragments with the scale applied by one integer op instead of HMUL2 (wrong values, same instruction
// count) or not at all: which part of the decode competes with the wgmma.
template <int VARIANT>
__device__ __forceinline__ void probe_fragment(int step, const uint32_t (&words)[2][2], __half2 scale_r0,
                                               __half2 scale_r1, uint32_t (&frag)[4]) {
    if (VARIANT != FULL_INT_SCALE && VARIANT != FULL_NO_SCALE) {
        weight_fragment(step, words, scale_r0, scale_r1, frag);
        return;
    }
    const uint32_t w0 = words[0][step / 2], w1 = words[1][step / 2];
    const uint32_t b0 = step % 2 == 0 ? odd_nibble_bytes(w0) : even_nibble_bytes(w0);
    const uint32_t b1 = step % 2 == 0 ? odd_nibble_bytes(w1) : even_nibble_bytes(w1);
    frag[0] = b0 & 0xFF00FF00u;
    frag[2] = __byte_perm(b0, 0u, 0x2404u);
    frag[1] = b1 & 0xFF00FF00u;
    frag[3] = __byte_perm(b1, 0u, 0x2404u);
    if (VARIANT == FULL_INT_SCALE) {
        const uint32_t k0 = *reinterpret_cast<const uint32_t *>(&scale_r0), k1 = *reinterpret_cast<const uint32_t *>(&scale_r1);
        frag[0] ^= k0;
        frag[2] ^= k0;
        frag[1] ^= k1;
        frag[3] ^= k1;
    }
}

// Byte offset of 16-byte chunk `chunk` of a 128-byte row under the 128-byte swizzle.
__host__ __device__ constexpr int swizzled(int row, int chunk) { return row * 128 + ((chunk ^ (row % 8)) * 16); }

__host__ __device__ constexpr int sf_atom_offset_of(int row) { return (row % 32) * 16 + ((row % 128) / 32) * 4; }

struct thread_rows {
    int r0, t;
};

// Packed words of the lane's scale group in rows r0, r0 + 8 of 64-K block kb, and the two scale bytes.
__device__ __forceinline__ void load_block(const uint8_t *weights, const uint8_t *scales, thread_rows tr, int kb,
                                           uint32_t (&words)[2][2], uint32_t &scale_bytes) {
    const int in_loop = kb % WEIGHT_KBLOCKS;
    const uint8_t *stage = weights + (in_loop / 4) * STAGE_BYTES;
    const int chunk = 2 * (in_loop % 4) + tr.t / 2;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = tr.r0 + 8 * h;
        const uint2 v = *reinterpret_cast<const uint2 *>(stage + swizzled(row, chunk) + 8 * (tr.t % 2));
        words[h][0] = v.x;
        words[h][1] = v.y;
    }
    const uint8_t *atom = scales + (in_loop * (ROWS / 128) + tr.r0 / 128) * 512;
    scale_bytes = atom[sf_atom_offset_of(tr.r0) + tr.t] | (atom[sf_atom_offset_of(tr.r0 + 8) + tr.t] << 8);
}

__device__ __forceinline__ void keep(const uint32_t (&f)[4]) {
    asm volatile("" ::"r"(f[0]), "r"(f[1]), "r"(f[2]), "r"(f[3]));
}

template <int N>
__device__ __forceinline__ void mma_step(float (&acc)[N / 2], const uint32_t (&frag)[4], const uint8_t *token_tile,
                                         int step) {
    wgmma_fence();
    wgmma_rs<N>::mma(acc, frag, swizzled_tile_descriptor(token_tile + step * 32));
    wgmma_commit();
}

template <int N, int VARIANT>
__device__ __forceinline__ void consumer_loop(const uint8_t *weights, const uint8_t *tokens, const uint8_t *scales,
                                              int kblocks, float *out, long long *clocks) {
    const int thread = threadIdx.x % 128, warp = thread / 32, lane = thread % 32;
    const int wg = threadIdx.x / 128;
    const thread_rows tr{wg * 64 + warp * 16 + lane / 4, lane % 4};
    const uint32_t zero = static_cast<uint32_t>(kblocks) >> 31;  // 0, unknown to the compiler
    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; i++) acc[i] = 0.0f;
    uint32_t words[2][2], next_words[2][2], scale_bytes, next_scale_bytes;
    uint32_t frag[8][4];  // fragment sets, indexed by constants only
    __half2 s0, s1, n0, n1;
    load_block(weights, scales, tr, 0, words, scale_bytes);
    e4m3x2_to_row_scales(scale_bytes, s0, s1);
#pragma unroll
    for (int s = 0; s < 4; s++) weight_fragment(s, words, s0, s1, frag[s]);
    __syncthreads();
    const long long start = clock64();
    for (int kb = 0; kb < kblocks; kb += 2) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const uint8_t *tile = tokens + ((kb + half) % TOKEN_BLOCKS) * TOKEN_BLOCK_BYTES;
            if (VARIANT != MMA_ONLY && VARIANT != MMA_TOUCH) {
                load_block(weights, scales, tr, kb + half + 1, next_words, next_scale_bytes);
                e4m3x2_to_row_scales(next_scale_bytes, n0, n1);
            }
            if (VARIANT == FULL || VARIANT == FULL_INT_SCALE || VARIANT == FULL_NO_SCALE) {
                // Two fragment sets: issue step s, wait for step s - 1, decode step s + 1 into its set.
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    mma_step<N>(acc, frag[s % 2], tile, s);
                    wgmma_wait<1>();
                    if (s < 3) probe_fragment<VARIANT>(s + 1, words, s0, s1, frag[(s + 1) % 2]);
                    else probe_fragment<VARIANT>(0, next_words, n0, n1, frag[0]);
                }
            } else if (VARIANT == FULL_DEEP) {
                // One set per step: the wait is for step s - 3, so decoding step s + 1 never waits on the
                // tensor cores.
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    mma_step<N>(acc, frag[s], tile, s);
                    wgmma_wait<3>();
                    if (s < 3) weight_fragment(s + 1, words, s0, s1, frag[s + 1]);
                    else weight_fragment(0, next_words, n0, n1, frag[0]);
                }
            } else if (VARIANT == FULL_PAIR) {
                // Two steps issued back to back, then the next two decoded together.
                mma_step<N>(acc, frag[0], tile, 0);
                mma_step<N>(acc, frag[1], tile, 1);
                wgmma_wait<2>();
                weight_fragment(2, words, s0, s1, frag[2]);
                weight_fragment(3, words, s0, s1, frag[3]);
                mma_step<N>(acc, frag[2], tile, 2);
                mma_step<N>(acc, frag[3], tile, 3);
                wgmma_wait<2>();
                weight_fragment(0, next_words, n0, n1, frag[0]);
                weight_fragment(1, next_words, n0, n1, frag[1]);
            } else if (VARIANT == FULL_BLOCK) {
                // A whole block issued, then the whole next block decoded (two sets of four).
                const int cur = 4 * half, nxt = 4 - 4 * half;
#pragma unroll
                for (int s = 0; s < 4; s++) mma_step<N>(acc, frag[cur + s], tile, s);
                wgmma_wait<4>();
#pragma unroll
                for (int s = 0; s < 4; s++) weight_fragment(s, next_words, n0, n1, frag[nxt + s]);
            } else if (VARIANT == MMA_TOUCH) {
                // The wgmma of FULL_DEEP, with the decode replaced by one dependent write of the next set.
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    mma_step<N>(acc, frag[s], tile, s);
                    wgmma_wait<3>();
#pragma unroll
                    for (int i = 0; i < 4; i++) frag[(s + 1) % 4][i] ^= zero;
                }
            } else if (VARIANT == MMA_ONLY) {
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    mma_step<N>(acc, frag[s], tile, s);
                    wgmma_wait<3>();
                }
            } else {
#pragma unroll
                for (int s = 1; s < 4; s++) {
                    weight_fragment(s, words, s0, s1, frag[s]);
                    keep(frag[s]);
                }
                weight_fragment(0, next_words, n0, n1, frag[0]);
                keep(frag[0]);
            }
            if (VARIANT != MMA_ONLY && VARIANT != MMA_TOUCH) {
                s0 = n0;
                s1 = n1;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    words[h][0] = next_words[h][0];
                    words[h][1] = next_words[h][1];
                }
            }
        }
    }
    wgmma_wait<0>();
    if (threadIdx.x % 128 == 0) clocks[gridDim.x + 4 * blockIdx.x + wg] = clock64() - start;  // this warpgroup's loop
    __syncthreads();
    const long long stop = clock64();
    if (threadIdx.x == 0) clocks[blockIdx.x] = stop - start;
    // Accumulator d[4i + e]: weight row r0 + 8 * (e / 2), token 8i + 2t + e % 2 (wgmma_rs.cuh).
    if (blockIdx.x == 0) {
#pragma unroll
        for (int i = 0; i < N / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                out[(tr.r0 + 8 * (e / 2)) * MAX_N + 8 * i + 2 * tr.t + e % 2] = acc[4 * i + e];
    } else if (VARIANT == DECODE_ONLY) {
        if (frag[0][0] == 0x12345678u && frag[1][1] == 0x9abcdef0u) out[0] = 1.0f;  // keeps the decode alive
    }
}

template <int VARIANT, int WARPGROUPS>
__global__ void __launch_bounds__(128 * WARPGROUPS, 1)
    probe_kernel(const uint8_t *image, int n, int kblocks, float *out, long long *clocks) {
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    uint8_t *base = dynamic_shared + (misalignment ? 1024 - misalignment : 0);
    for (int i = threadIdx.x * 16; i < IMAGE_BYTES; i += blockDim.x * 16)
        *reinterpret_cast<uint4 *>(base + i) = *reinterpret_cast<const uint4 *>(image + i);
    fence_shared_for_async();
    __syncthreads();
    const uint8_t *weights = base, *tokens = base + WEIGHT_BYTES, *scales = tokens + TOKEN_BYTES;
    if (VARIANT == SPLIT_ROLES) {
        // Warpgroups 0-1 only multiply, 2-3 only decode, at the same time: does the decode slow down beside wgmma
        // issued by other warps, or only beside its own?
        const int wg = __shfl_sync(0xFFFFFFFFu, threadIdx.x / 128, 0);
        if (wg < 2) {
            if (n == 64) consumer_loop<64, MMA_ONLY>(weights, tokens, scales, kblocks, out, clocks);
            else consumer_loop<128, MMA_ONLY>(weights, tokens, scales, kblocks, out, clocks);
        } else {
            consumer_loop<64, DECODE_ONLY>(weights, tokens, scales, kblocks, out, clocks);
        }
        return;
    }
    // One branch on the run-time width into a loop compiled for it, as a grouped kernel chooses per unit.
    switch (__shfl_sync(0xFFFFFFFFu, n, 0)) {
    case 40: consumer_loop<40, VARIANT>(weights, tokens, scales, kblocks, out, clocks); break;
    case 64: consumer_loop<64, VARIANT>(weights, tokens, scales, kblocks, out, clocks); break;
    case 128: consumer_loop<128, VARIANT>(weights, tokens, scales, kblocks, out, clocks); break;
    default:  // 124 accumulators a thread: only where two warpgroups leave the registers for them
        if (WARPGROUPS == 2) consumer_loop<248, VARIANT>(weights, tokens, scales, kblocks, out, clocks);
        break;
    }
}

// ---- host ----------------------------------------------------------------------------------------------------

static uint16_t half_bits(double x) {  // x is exactly representable in fp16 here
    const __half h = __double2half(x);
    return *reinterpret_cast<const uint16_t *>(&h);
}

int main() {
    int sms = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    srand(12345);
    std::vector<uint8_t> image(IMAGE_BYTES);
    std::vector<int> code(ROWS * WEIGHT_KBLOCKS * 64), scale(ROWS * WEIGHT_KBLOCKS * 4);
    std::vector<double> token(TOKEN_BLOCKS * MAX_N * 64);  // [block][row][position]
    for (int r = 0; r < ROWS; r++)
        for (int kb = 0; kb < WEIGHT_KBLOCKS; kb++) {
            for (int k = 0; k < 64; k++) code[(r * WEIGHT_KBLOCKS + kb) * 64 + k] = (r * 7 + kb * 5 + k * 3 + rand()) & 15;
            for (int g = 0; g < 4; g++) {
                int c = rand() % 0x7F;  // every finite positive e4m3 code but zero
                if (c == 0) c = 0x38;   // 1.0
                scale[(r * WEIGHT_KBLOCKS + kb) * 4 + g] = c;
            }
        }
    for (auto &v : token) v = ((rand() % 33) - 16) / 16.0;
    for (int r = 0; r < ROWS; r++)
        for (int kb = 0; kb < WEIGHT_KBLOCKS; kb++) {
            uint8_t *stage = image.data() + (kb / 4) * STAGE_BYTES;
            for (int k = 0; k < 64; k += 2) {
                const int byte = (kb % 4) * 32 + k / 2;
                const int lo = code[(r * WEIGHT_KBLOCKS + kb) * 64 + k], hi = code[(r * WEIGHT_KBLOCKS + kb) * 64 + k + 1];
                stage[swizzled(r, byte / 16) + byte % 16] = (uint8_t)(lo | (hi << 4));
            }
            for (int g = 0; g < 4; g++)
                image[WEIGHT_BYTES + TOKEN_BYTES + (kb * (ROWS / 128) + r / 128) * 512 + sf_atom_offset_of(r) + g] =
                    (uint8_t)scale[(r * WEIGHT_KBLOCKS + kb) * 4 + g];
        }
    for (int b = 0; b < TOKEN_BLOCKS; b++)
        for (int n = 0; n < MAX_N; n++)
            for (int p = 0; p < 64; p++) {
                const uint16_t h = half_bits(token[(b * MAX_N + n) * 64 + p]);
                memcpy(image.data() + WEIGHT_BYTES + b * TOKEN_BLOCK_BYTES + swizzled(n, p / 8) + (p % 8) * 2, &h, 2);
            }

    uint8_t *d_image;
    float *d_out;
    long long *d_clocks;
    CHECK(cudaMalloc(&d_image, IMAGE_BYTES));
    CHECK(cudaMalloc(&d_out, ROWS * MAX_N * sizeof(float)));
    CHECK(cudaMalloc(&d_clocks, 5 * sms * sizeof(long long)));
    CHECK(cudaMemcpy(d_image, image.data(), IMAGE_BYTES, cudaMemcpyHostToDevice));
    typedef void (*probe_fn)(const uint8_t *, int, int, float *, long long *);
    struct probe {
        probe_fn kernel;
        const char *name;
        int warpgroups;
        bool decodes, multiplies;
    };
    const probe probes[] = {
        {probe_kernel<FULL, 2>, "full", 2, true, true},          {probe_kernel<MMA_ONLY, 2>, "mma", 2, false, true},
        {probe_kernel<DECODE_ONLY, 2>, "decode", 2, true, false}, {probe_kernel<FULL_DEEP, 2>, "deep", 2, true, true},
        {probe_kernel<FULL_PAIR, 2>, "pair", 2, true, true},     {probe_kernel<FULL_BLOCK, 2>, "block", 2, true, true},
        {probe_kernel<MMA_TOUCH, 2>, "touch", 2, false, true},   {probe_kernel<FULL, 3>, "full", 3, true, true},
        {probe_kernel<FULL, 4>, "full", 4, true, true},          {probe_kernel<MMA_ONLY, 4>, "mma", 4, false, true},
        {probe_kernel<DECODE_ONLY, 4>, "decode", 4, true, false}, {probe_kernel<FULL_INT_SCALE, 2>, "intsc", 2, false, true},
        {probe_kernel<FULL_NO_SCALE, 2>, "nosc", 2, false, true}, {probe_kernel<FULL_INT_SCALE, 4>, "intsc", 4, false, true},
        {probe_kernel<SPLIT_ROLES, 4>, "split", 4, false, false},
    };
    const int count = sizeof probes / sizeof probes[0];
    for (int v = 0; v < count; v++)
        CHECK(cudaFuncSetAttribute(probes[v].kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SHARED_BYTES));

    const int widths[4] = {40, 64, 128, 248};
    // Correctness: one pass over the 1024 K in shared memory, against float64.
    int failures = 0;
    std::vector<float> out(ROWS * MAX_N);
    for (int check = 0; check < 4 * count; check++) {
        const int n = widths[check % 4], v = check / 4;
        const probe &pr = probes[v];
        if (!pr.decodes || !pr.multiplies || (n > 128 && pr.warpgroups > 2)) continue;
        CHECK(cudaMemset(d_out, 0xFF, ROWS * MAX_N * sizeof(float)));  // NaN
        pr.kernel<<<1, 128 * pr.warpgroups, SHARED_BYTES>>>(d_image, n, WEIGHT_KBLOCKS, d_out, d_clocks);
        CHECK(cudaGetLastError());
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(out.data(), d_out, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
        double worst = 0;
        for (int r = 0; r < 64 * pr.warpgroups; r++)
            for (int c = 0; c < n; c++) {
                double ref = 0, magnitude = 0;
                for (int kb = 0; kb < WEIGHT_KBLOCKS; kb++)
                    for (int p = 0; p < 64; p++) {
                        const int k = weight_k_of_position(p);
                        const double w = e2m1_value(code[(r * WEIGHT_KBLOCKS + kb) * 64 + k]) *
                                         e4m3_value(scale[(r * WEIGHT_KBLOCKS + kb) * 4 + k / 16]) / 128.0;
                        const double term = w * token[((kb % TOKEN_BLOCKS) * MAX_N + c) * 64 + p];
                        ref += term;
                        magnitude += std::fabs(term);
                    }
                const double got = out[r * MAX_N + c];
                const double err = std::fabs(got - ref) / (magnitude + 1e-30);
                if (!(err <= 1e-6)) {
                    if (failures < 5) printf("  mismatch n=%d row %d token %d: got %.9g want %.9g\n", n, r, c, got, ref);
                    failures++;
                }
                if (err > worst) worst = err;
            }
        printf("check %-6s x%d n=%3d: worst |err|/sum|terms| = %.3g\n", pr.name, pr.warpgroups, n, worst);
    }
    printf("correctness: %s (%d mismatches)\n", failures ? "FAIL" : "ok", failures);

    // Speed: every SM busy, 1024 64-K blocks per CTA (65536 K).
    const int kblocks = 1024;
    std::vector<long long> clocks(5 * sms);
    cudaEvent_t t0, t1;
    CHECK(cudaEventCreate(&t0));
    CHECK(cudaEventCreate(&t1));
    printf("\n%-7s %2s %4s %12s %10s %12s %10s\n", "variant", "wg", "n", "clocks/CTA", "of ideal", "TFLOP/s", "wt el/clk");
    for (int variant = 0; variant < count; variant++)
        for (int n : widths) {
            const probe &pr = probes[variant];
            if (n > 128 && pr.warpgroups > 2) continue;
            auto launch = [&] { pr.kernel<<<sms, 128 * pr.warpgroups, SHARED_BYTES>>>(d_image, n, kblocks, d_out, d_clocks); };
            launch();
            CHECK(cudaGetLastError());
            CHECK(cudaDeviceSynchronize());
            float best_ms = 1e30f;
            for (int rep = 0; rep < 5; rep++) {
                CHECK(cudaEventRecord(t0));
                launch();
                CHECK(cudaEventRecord(t1));
                CHECK(cudaEventSynchronize(t1));
                float ms;
                CHECK(cudaEventElapsedTime(&ms, t0, t1));
                if (ms < best_ms) best_ms = ms;
            }
            CHECK(cudaMemcpy(clocks.data(), d_clocks, 5 * sms * sizeof(long long), cudaMemcpyDeviceToHost));
            if (pr.warpgroups == 4 && !pr.decodes && !pr.multiplies) {
                if (n != 64 && n != 128) continue;
                long long mma = 0, decode = 0;
                for (int b = 0; b < sms; b++) {
                    mma = std::max(mma, std::max(clocks[sms + 4 * b], clocks[sms + 4 * b + 1]));
                    decode = std::max(decode, std::max(clocks[sms + 4 * b + 2], clocks[sms + 4 * b + 3]));
                }
                printf("split    4 %4d  mma warpgroups %lld clocks (%.1f%% of ideal), decode warpgroups %lld clocks (%.1f el/clk)\n",
                       n, mma, 100.0 * kblocks * 4 * 2 * (n / 2) / mma, decode, 128.0 * 64 * kblocks / decode);
                continue;
            }
            long long worst = 0;
            for (long long c : clocks) worst = c > worst ? c : worst;
            const int rows = 64 * pr.warpgroups;
            const double ideal = (double)kblocks * 4 * pr.warpgroups * (n / 2);  // 4 steps, N/2 clocks a wgmma
            const double flops = 2.0 * rows * n * 64.0 * kblocks * sms;
            const double elements = (double)rows * 64 * kblocks;  // weight elements decoded per CTA
            printf("%-7s %2d %4d %12lld %9.1f%% %12.1f %10.1f\n", pr.name, pr.warpgroups, n, worst,
                   pr.multiplies ? 100.0 * ideal / worst : 0.0, pr.multiplies ? flops / best_ms / 1e9 : 0.0,
                   pr.decodes ? elements / worst : 0.0);
        }
    CHECK(cudaFree(d_image));
    CHECK(cudaFree(d_out));
    CHECK(cudaFree(d_clocks));
    return failures ? 1 : 0;
}
