// wgmma_overlap.cu: how much a consumer warpgroup's own per-block work adds to its wgmma time. Each warpgroup
// runs BLOCKS blocks of four wgmma m64n128k16 (A from registers, B from a 128-byte-swizzled shared tile, as the
// Hopper kernel issues them), waiting with wait_group 1 (overlapped) or 0 (serial) after each block's commit,
// with a dependent integer chain of WORK steps between blocks standing in for the fragment decode. Prints the
// clocks per 64-K block per warpgroup against the tensor floor for each configuration.
// Build: make -C dev wgmma_overlap (dev/README.md), then run /tmp/nvfp4_dev/wgmma_overlap on an H200.
#include <stdint.h>
#include <stdio.h>

#include "sm90_ptx.cuh"
#include "wgmma_rs.cuh"

constexpr int BLOCKS = 2000;      // 64-K blocks per warpgroup
constexpr int MAX_THREADS = 256;  // two warpgroups
constexpr int TOKENS = 128;       // wgmma's N

template <int WORK, int WAIT>
__global__ void __launch_bounds__(MAX_THREADS, 1) overlap(const uint32_t *in, float *out, long long *cycles, int n) {
    __shared__ __align__(1024) uint8_t tile[64 * 1024];
    for (int i = threadIdx.x; i < (int)sizeof tile / 4; i += blockDim.x)
        reinterpret_cast<uint32_t *>(tile)[i] = 0x3c003c00u;  // fp16 ones
    __syncthreads();
    float d[TOKENS / 2];
    for (int i = 0; i < TOKENS / 2; i++) d[i] = 0;
    uint32_t fa[4][4], fb[4][4];
    uint32_t seed = in[threadIdx.x];
    auto load = [&](int kb, uint32_t (&f)[4][4]) {
        uint32_t x = seed + kb;
#pragma unroll 1
        for (int w = 0; w < WORK; w++) x = x * 1664525u + 1013904223u;
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < 4; j++) f[s][j] = 0x3c003c00u ^ (x & 0x00010001u);
    };
    const uint64_t base = swizzled_tile_descriptor(tile);  // k16 slice s at + 2 s (32 bytes)
    auto step = [&](int kb, uint32_t (&f)[4][4], uint32_t (&nf)[4][4]) {
        wgmma_fence();
        for (int s = 0; s < 4; s++) wgmma_rs<TOKENS>::mma(d, f[s], base + s * 2);
        wgmma_commit();
        wgmma_wait<WAIT>();
        if (kb + 1 < n) load(kb + 1, nf);
    };
    load(0, fa);
    long long t0 = clock64();
    for (int kb = 0; kb < n; kb += 2) {
        step(kb, fa, fb);
        if (kb + 1 < n) step(kb + 1, fb, fa);
    }
    wgmma_wait<0>();
    long long t1 = clock64();
    if (threadIdx.x % 128 == 0) cycles[blockIdx.x * 2 + threadIdx.x / 128] = t1 - t0;
    float s = 0;
    for (int i = 0; i < TOKENS / 2; i++) s += d[i];
    out[blockIdx.x * MAX_THREADS + threadIdx.x] = s;
}

template <int WORK, int WAIT = 1>
void run(int threads, int blocks, const char *name) {
    uint32_t *in;
    float *out;
    long long *cyc;
    cudaMalloc(&in, 4096);
    cudaMemset(in, 0, 4096);
    cudaMalloc(&out, blocks * MAX_THREADS * 4);
    cudaMalloc(&cyc, blocks * 16);
    overlap<WORK, WAIT><<<blocks, threads>>>(in, out, cyc, BLOCKS);  // warm-up
    cudaDeviceSynchronize();
    overlap<WORK, WAIT><<<blocks, threads>>>(in, out, cyc, BLOCKS);
    long long h[2];
    cudaMemcpy(h, cyc, 16, cudaMemcpyDeviceToHost);
    // Tensor floor: 4 x 64 x 128 x 16 FMA a block per warpgroup at 4096 fp16 FLOP (2048 FMA) per SM clock.
    printf("%-28s WGs=%d blocks=%d: %.0f cycles per 64-K block per WG (tensor floor %d)  err=%s\n", name, threads / 128,
           blocks, (double)h[0] / BLOCKS, 4 * 128 * 64 * 16 * 2 / 4096 * threads / 128,
           cudaGetErrorString(cudaGetLastError()));
}

int main() {
    run<0>(128, 1, "1 WG, no decode");
    run<0>(256, 1, "2 WG, no decode");
    run<0>(256, 132, "2 WG x 132 CTAs, no decode");
    run<20>(256, 1, "2 WG, 20-op chain");
    run<60>(256, 1, "2 WG, 60-op chain");
    run<150>(256, 1, "2 WG, 150-op chain");
    run<0, 0>(256, 1, "2 WG, serial, no decode");
    run<20, 0>(256, 1, "2 WG, serial, 20-op chain");
    run<60, 0>(256, 1, "2 WG, serial, 60-op chain");
    run<60>(128, 1, "1 WG, 60-op chain");
    run<60, 0>(128, 1, "1 WG, serial, 60-op chain");
    return 0;
}
