// kernel_probe.cu: times the Hopper kernel (through nvfp4_hopper_launch, kernels/launchers.h) on the four
// benchmark shapes without torch or the Python module, for quick comparisons of kernel variants: build it
// against a variant's copy of kernels/hopper_gemm.cu (KERNEL= in dev/Makefile) and against the original, and
// compare them in one run. Random bytes as operands (timing only; the test suite checks results), SETS input
// sets rotated, no L2 flush, so the numbers read lower than bench/bench.py's. Prints us per call and the
// geomean; an optional argument forces the token tile instead of the planner's choice.
// Build: make -C dev kernel_probe (dev/README.md), then run /tmp/nvfp4_dev/kernel_probe [token_tile] on an H200.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "launchers.h"
extern "C" {
#include "planner.h"
}

#define CK(x)                                                                      \
    do {                                                                           \
        cudaError_t e_ = (x);                                                      \
        if (e_ != cudaSuccess) {                                                   \
            printf("CUDA %s line %d\n", cudaGetErrorString(e_), __LINE__);         \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

constexpr int SETS = 4;      // input sets per shape, rotated: consecutive launches read different operands
constexpr int REPEATS = 10;  // timed rounds over the sets

// Hash bytes; scales get e4m3 codes near 1 (0x30..0x3F) so that nothing overflows.
__global__ void fill(uint8_t *p, size_t n, uint32_t seed, int scales) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        p[i] = scales ? (uint8_t)(0x30 + (h & 0xF)) : (uint8_t)h;
    }
}

static uint8_t *alloc_fill(size_t n, uint32_t seed, int scales) {
    uint8_t *p;
    CK(cudaMalloc(&p, n + 256));
    fill<<<512, 256>>>(p, n, seed, scales);
    return p;
}

static void launch(const std::vector<nvfp4_group_entry> &entries, const nvfp4_launch_shape &shape) {
    CK((cudaError_t)nvfp4_hopper_launch(entries.data(), nullptr, (int32_t)entries.size(), &shape, nullptr));
}

struct spec {
    const char *name;
    std::vector<int> m;
    int n, k;
};

int main(int argc, char **argv) {
    int sms;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const int force_tile = argc > 1 ? atoi(argv[1]) : 0;
    const std::vector<spec> specs = {
        {"spec1", {80, 176, 128, 72, 64, 248, 96, 160}, 4096, 7168},
        {"spec2", {40, 76, 168, 72, 164, 148, 196, 160}, 7168, 2048},
        {"spec3", {192, 320}, 3072, 4096},
        {"spec4", {128, 384}, 4096, 1536},
    };
    double logsum = 0;
    for (const spec &s : specs) {
        const int groups = (int)s.m.size();
        std::vector<std::vector<nvfp4_group_entry>> sets(SETS, std::vector<nvfp4_group_entry>(groups));
        nvfp4_schedule sched{};
        for (int t = 0; t < SETS; t++) {
            for (int g = 0; g < groups; g++) {
                nvfp4_group_entry &e = sets[t][g];
                memset(&e, 0, sizeof e);
                const int M = s.m[g], N = s.n, K = s.k;
                const int kblocks = (K / 16 + 3) / 4;  // 64-K blocks: one scale atom column each
                e.a = alloc_fill((size_t)M * K / 2, 1 + t * 100 + g, 0);
                e.b = alloc_fill((size_t)N * K / 2, 2 + t * 100 + g, 0);
                const int m_rowblocks = (M + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS;
                const int n_rowblocks = (N + NVFP4_SF_ATOM_ROWS - 1) / NVFP4_SF_ATOM_ROWS;
                e.sfa = alloc_fill((size_t)m_rowblocks * kblocks * NVFP4_SF_ATOM_BYTES, 3 + t * 100 + g, 1);
                e.sfb = alloc_fill((size_t)n_rowblocks * kblocks * NVFP4_SF_ATOM_BYTES, 4 + t * 100 + g, 1);
                uint8_t *c;
                CK(cudaMalloc(&c, (size_t)M * N * 2));
                e.c = c;
                e.m = M, e.n = N, e.k = K, e.l = 1;
                e.a_row_stride = K / 2, e.b_row_stride = K / 2, e.c_row_stride = N * 2;
                e.sfa_rowblock_stride = kblocks * NVFP4_SF_ATOM_BYTES, e.sfa_kblock_stride = NVFP4_SF_ATOM_BYTES;
                e.sfb_rowblock_stride = kblocks * NVFP4_SF_ATOM_BYTES, e.sfb_kblock_stride = NVFP4_SF_ATOM_BYTES;
            }
            sched = nvfp4_schedule_units(sets[t].data(), groups, sms);
            if (force_tile) {
                sched.token_tile = force_tile;
                sched.units = nvfp4_count_units(sets[t].data(), groups, force_tile);
            }
        }
        const nvfp4_launch_shape shape{sched.units, sched.token_tile, sched.units < sms ? sched.units : sms, 0};
        CK(cudaDeviceSynchronize());
        for (int w = 0; w < 2; w++)  // warm-up
            for (int t = 0; t < SETS; t++) launch(sets[t], shape);
        CK(cudaDeviceSynchronize());
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        CK(cudaEventRecord(e0));
        for (int r = 0; r < REPEATS; r++)
            for (int t = 0; t < SETS; t++) launch(sets[t], shape);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = ms * 1000.0 / (REPEATS * SETS);
        logsum += log(us);
        printf("%s tile=%d units=%d grid=%d  %.1f us\n", s.name, sched.token_tile, sched.units, shape.grid, us);
    }
    printf("geomean %.1f us\n", exp(logsum / specs.size()));
    return 0;
}
