// kernel_probe.cu: times the Hopper kernel on the four benchmark shapes without torch or the Python module, for
// quick comparisons of kernel variants (bench/NOTES.md, Hopper v3). Random bytes as operands (timing only; the
// test suite checks results), 4 input sets rotated, no L2 flush: compare variants in one run, not against
// bench/bench.py. On an H200, from the repository root:
//   nvcc -std=c++17 -O3 -Icsrc -Ikernels -gencode=arch=compute_90a,code=sm_90a bench/kernel_probe.cu csrc/planner.c \
//        -o /tmp/kernel_probe && /tmp/kernel_probe [token_tile]
#include "../kernels/hopper_gemm.cu"
#include <stdio.h>
#include <stdlib.h>
#include <vector>
extern "C" {
#include "../csrc/planner.h"
}
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("CUDA %s line %d\n", cudaGetErrorString(e_), __LINE__); exit(1);} } while (0)

__global__ void fill(uint8_t *p, size_t n, uint32_t seed, int scales) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        p[i] = scales ? (uint8_t)(0x30 + (h & 0xF)) : (uint8_t)h;
    }
}
static uint8_t *alloc_fill(size_t n, uint32_t seed, int scales) {
    uint8_t *p; CK(cudaMalloc(&p, n + 256)); fill<<<512, 256>>>(p, n, seed, scales); return p;
}
static void launch(const std::vector<nvfp4_group_entry> &entries, const nvfp4_launch_shape &shape) {
    CK((cudaError_t)nvfp4_hopper_launch(entries.data(), nullptr, (int32_t)entries.size(), &shape, nullptr));
}
struct spec { const char *name; std::vector<int> m; int n, k; };
int main(int argc, char **argv) {
    int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    int force_tile = argc > 1 ? atoi(argv[1]) : 0;
    std::vector<spec> specs = {
        {"spec1", {80, 176, 128, 72, 64, 248, 96, 160}, 4096, 7168},
        {"spec2", {40, 76, 168, 72, 164, 148, 196, 160}, 7168, 2048},
        {"spec3", {192, 320}, 3072, 4096},
        {"spec4", {128, 384}, 4096, 1536},
    };
    const int SETS = 4;
    double logsum = 0;
    for (auto &s : specs) {
        const int G = (int)s.m.size();
        std::vector<std::vector<nvfp4_group_entry>> sets(SETS, std::vector<nvfp4_group_entry>(G));
        nvfp4_schedule sched{};
        for (int t = 0; t < SETS; t++) {
            for (int g = 0; g < G; g++) {
                nvfp4_group_entry &e = sets[t][g];
                memset(&e, 0, sizeof e);
                int M = s.m[g], N = s.n, K = s.k;
                int rk = (K / 16 + 3) / 4;
                e.a = alloc_fill((size_t)M * K / 2, 1 + t * 100 + g, 0);
                e.b = alloc_fill((size_t)N * K / 2, 2 + t * 100 + g, 0);
                e.sfa = alloc_fill((size_t)((M + 127) / 128) * rk * 512, 3 + t * 100 + g, 1);
                e.sfb = alloc_fill((size_t)((N + 127) / 128) * rk * 512, 4 + t * 100 + g, 1);
                uint8_t *c; CK(cudaMalloc(&c, (size_t)M * N * 2)); e.c = c;
                e.m = M, e.n = N, e.k = K, e.l = 1;
                e.a_row_stride = K / 2, e.b_row_stride = K / 2, e.c_row_stride = N * 2;
                e.sfa_rowblock_stride = rk * 512, e.sfa_kblock_stride = 512;
                e.sfb_rowblock_stride = rk * 512, e.sfb_kblock_stride = 512;
            }
            sched = nvfp4_schedule_units(sets[t].data(), G, sms);
            if (force_tile) sched.token_tile = force_tile, sched.units = nvfp4_count_units(sets[t].data(), G, force_tile);
        }
        nvfp4_launch_shape shape{sched.units, sched.token_tile, sched.units < sms ? sched.units : sms, 0};
        CK(cudaDeviceSynchronize());
        for (int w = 0; w < 2; w++)
            for (int t = 0; t < SETS; t++) launch(sets[t], shape);
        CK(cudaDeviceSynchronize());
        cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
        const int REPS = 10;
        CK(cudaEventRecord(e0));
        for (int r = 0; r < REPS; r++)
            for (int t = 0; t < SETS; t++) launch(sets[t], shape);
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        float ms; CK(cudaEventElapsedTime(&ms, e0, e1));
        double us = ms * 1000.0 / (REPS * SETS);
        logsum += log(us);
        printf("%s tile=%d units=%d grid=%d  %.1f us\n", s.name, sched.token_tile, sched.units, shape.grid, us);
    }
    printf("geomean %.1f us\n", exp(logsum / specs.size()));
    return 0;
}
