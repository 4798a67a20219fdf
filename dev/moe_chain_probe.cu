// moe_chain_probe.cu: what it costs, at the least, to take an MoE call's layout from expert offsets that only the
// device holds, against a layout the host passes with the launch (custom_kernel's case).
//
// Each iteration is a chain of kernels on one stream, every one after the first launched as a programmatic
// dependent (PDL) of the one before, as the library launches them:
//   previous  132 CTAs that stand for the call before (a main kernel): they spin SPIN_NS and the first CTA writes
//             the expert end offsets, so that the next call must wait for it before reading them;
//   [table]   variant TABLE only: one CTA reads the offsets, derives the layout (below) and writes it to memory;
//   decode    stands for the token pre-pass: one thread per padded token row and 64-K block, 256 rows a CTA; it
//             finds its row's expert in the layout, reads the token's 32 bytes and writes 128 bytes of scratch;
//   consumer  132 CTAs that stand for the main kernel: they wait for the decode, read its scratch, spin SPIN_NS.
// The layout: each expert's token start (its previous end, clamped and made non-decreasing: a block maximum scan)
// and its first padded row (rows rounded up to 8: a block sum scan). Variants of where the decode gets it:
//   KNOWN    from its parameters (the host computed it);
//   DERIVED  every decode CTA reads the offsets after its wait and derives it (two block scans);
//   TABLE    from the table kernel's output (one more kernel in the chain, one more dependent read).
// The time per iteration (CUDA events over ITERATIONS back-to-back iterations) less KNOWN's is the cost of the
// variant's place in the chain. Expert row counts are fixed per case (the benchmark specs' shapes).
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include <vector>

#include "probe_host.h"
#include "sm90_ptx.cuh"

namespace {

constexpr int THREADS = 256;           // decode rows per CTA, and the table kernel's width
constexpr int MAX_EXPERTS = THREADS;   // one expert per thread in the scans
constexpr int TOKEN_BYTES = 32;        // a token's 64-K block, packed
constexpr int SCRATCH_BYTES = 128;     // the same block decoded
constexpr int ROW_ALIGN = 8;           // padded rows per expert: a multiple of 8
constexpr int SMS = 132;
constexpr long long SPIN_NS = 15000;   // the previous and the consumer kernels' own work
constexpr int WARMUP = 20, ITERATIONS = 200;

enum Variant { KNOWN, DERIVED, TABLE, VARIANTS };
const char *const VARIANT_NAMES[VARIANTS] = {"known", "derived", "table"};

struct expert_layout {
    int32_t start[MAX_EXPERTS];        // first token row
    int32_t padded_start[MAX_EXPERTS + 1];  // first padded row; [experts] = the padded rows in all
};

struct chain_params {
    int experts, tokens, kblocks;
    const int32_t *offsets;       // [experts] expert end offsets, written by `previous`
    const uint8_t *tokens_packed; // [tokens][kblocks][TOKEN_BYTES]
    uint8_t *scratch;             // [padded rows][kblocks][SCRATCH_BYTES]
    expert_layout *table;         // TABLE: the table kernel's output
    expert_layout known;          // KNOWN: the host's layout
};

__device__ __forceinline__ void spin(long long ns) {
    uint64_t start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    while ((long long)(now - start) < ns);
}

// Block-wide exclusive scan (maximum or sum) of one value per thread: warp shuffles, then the warps' totals.
template <bool IS_MAX>
__device__ __forceinline__ int32_t block_exclusive_scan(int32_t value) {
    __shared__ int32_t warp_totals[THREADS / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int32_t inclusive = value;
    for (int step = 1; step < 32; step *= 2) {
        const int32_t other = __shfl_up_sync(0xFFFFFFFFu, inclusive, step);
        if (lane >= step) inclusive = IS_MAX ? max(inclusive, other) : inclusive + other;
    }
    if (lane == 31) warp_totals[warp] = inclusive;
    __syncthreads();
    int32_t before = 0;  // both scans' values are >= 0
    for (int w = 0; w < warp; w++) before = IS_MAX ? max(before, warp_totals[w]) : before + warp_totals[w];
    __syncthreads();
    const int32_t previous = __shfl_up_sync(0xFFFFFFFFu, inclusive, 1);
    return lane == 0 ? before : (IS_MAX ? max(before, previous) : before + previous);
}

// Block-wide: the layout from the offsets into `layout` (shared or global memory), one expert per thread.
__device__ __forceinline__ void derive_layout(const chain_params &p, expert_layout *layout) {
    const int e = threadIdx.x;
    int32_t end = e < p.experts ? p.offsets[e] : 0;
    end = end < 0 ? 0 : min(end, p.tokens);
    const int32_t start = block_exclusive_scan<true>(end);
    end = max(end, start);
    const int32_t padded = (end - start + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
    const int32_t padded_start = block_exclusive_scan<false>(e < p.experts ? padded : 0);
    if (e < p.experts) {
        layout->start[e] = start;
        layout->padded_start[e] = padded_start;
    }
    if (e == p.experts - 1) layout->padded_start[p.experts] = padded_start + padded;
    __syncthreads();
}

__global__ void __launch_bounds__(THREADS) previous_kernel(const chain_params p, int32_t *offsets,
                                                           const int32_t *ends) {
    dependency_wait();  // the consumer of the iteration before
    spin(SPIN_NS);
    if (blockIdx.x == 0 && threadIdx.x < p.experts) offsets[threadIdx.x] = ends[threadIdx.x];
}

__global__ void __launch_bounds__(THREADS) table_kernel(const chain_params p) {
    dependents_may_launch();
    dependency_wait();
    derive_layout(p, p.table);
}

__global__ void __launch_bounds__(THREADS) decode_kernel(const __grid_constant__ chain_params p, int variant) {
    dependents_may_launch();
    dependency_wait();
    __shared__ expert_layout layout;
    if (variant == DERIVED) {
        derive_layout(p, &layout);
    } else {
        const expert_layout *from = variant == KNOWN ? &p.known : p.table;
        for (int e = threadIdx.x; e <= p.experts; e += blockDim.x) {
            if (e < p.experts) layout.start[e] = from->start[e];
            layout.padded_start[e] = from->padded_start[e];
        }
        __syncthreads();
    }
    const int row = blockIdx.x * THREADS + threadIdx.x, kb = blockIdx.y;
    if (row >= layout.padded_start[p.experts]) return;
    int lo = 0, hi = p.experts - 1;  // the last expert whose padded rows begin at or before row
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (layout.padded_start[mid] <= row) lo = mid;
        else hi = mid - 1;
    }
    const int local = row - layout.padded_start[lo];
    const int rows = (lo + 1 < p.experts ? layout.start[lo + 1] : p.tokens) - layout.start[lo];
    uint4 a = make_uint4(0, 0, 0, 0), b = a;
    if (local < rows) {  // the dependent read: the token's address comes from the layout
        const uint4 *src = reinterpret_cast<const uint4 *>(
            p.tokens_packed + ((int64_t)(layout.start[lo] + local) * p.kblocks + kb) * TOKEN_BYTES);
        a = src[0];
        b = src[1];
    }
    uint4 *dst = reinterpret_cast<uint4 *>(p.scratch + ((int64_t)row * p.kblocks + kb) * SCRATCH_BYTES);
#pragma unroll
    for (int i = 0; i < SCRATCH_BYTES / 32; i++) {
        dst[2 * i] = make_uint4(a.x ^ i, a.y, a.z, a.w);
        dst[2 * i + 1] = make_uint4(b.x, b.y ^ i, b.z, b.w);
    }
}

__global__ void __launch_bounds__(THREADS) consumer_kernel(const chain_params p, int32_t *sink) {
    dependency_wait();  // the decode's scratch
    const int32_t first = *reinterpret_cast<const int32_t *>(p.scratch + (int64_t)blockIdx.x * SCRATCH_BYTES);
    spin(SPIN_NS);
    if (threadIdx.x == 0 && first == 0x7fffffff) *sink = first;  // keeps the read
}

// Launches `kernel` on the stream as a programmatic dependent of the kernel before it.
template <typename... Args>
void launch_dependent(void (*kernel)(Args...), dim3 grid, cudaStream_t stream, Args... args) {
    cudaLaunchAttribute attribute = {};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(THREADS);
    config.stream = stream;
    config.attrs = &attribute;
    config.numAttrs = 1;
    CHECK(cudaLaunchKernelEx(&config, kernel, args...));
}

struct chain_case {
    const char *name;
    std::vector<int> rows;  // tokens per expert
    int k;
};

// us per iteration of each variant; the decode's scratch checked against KNOWN's.
void run_case(const chain_case &c, cudaStream_t stream) {
    const int experts = (int)c.rows.size(), kblocks = c.k / 64;
    chain_params p = {};
    p.experts = experts;
    p.kblocks = kblocks;
    std::vector<int32_t> ends(experts);
    int tokens = 0, padded = 0;
    for (int e = 0; e < experts; e++) {
        p.known.start[e] = tokens;
        p.known.padded_start[e] = padded;
        tokens += c.rows[e];
        padded += (c.rows[e] + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
        ends[e] = tokens;
    }
    p.known.padded_start[experts] = padded;
    p.tokens = tokens;
    int32_t *offsets, *device_ends, *sink;
    uint8_t *packed, *scratch;
    CHECK(cudaMalloc(&offsets, sizeof(int32_t) * experts));
    CHECK(cudaMalloc(&device_ends, sizeof(int32_t) * experts));
    CHECK(cudaMalloc(&sink, sizeof(int32_t)));
    CHECK(cudaMalloc(&p.table, sizeof(expert_layout)));
    const size_t packed_bytes = (size_t)tokens * kblocks * TOKEN_BYTES, scratch_bytes = (size_t)padded * kblocks * SCRATCH_BYTES;
    CHECK(cudaMalloc(&packed, packed_bytes));
    CHECK(cudaMalloc(&scratch, scratch_bytes));
    std::vector<uint8_t> host_packed(packed_bytes);
    for (size_t i = 0; i < packed_bytes; i++) host_packed[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK(cudaMemcpy(packed, host_packed.data(), packed_bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(device_ends, ends.data(), sizeof(int32_t) * experts, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(offsets, ends.data(), sizeof(int32_t) * experts, cudaMemcpyHostToDevice));
    p.offsets = offsets;
    p.tokens_packed = packed;
    p.scratch = scratch;
    const dim3 decode_grid((padded + THREADS - 1) / THREADS, kblocks);

    auto iteration = [&](int variant) {
        launch_dependent(previous_kernel, dim3(SMS), stream, p, offsets, (const int32_t *)device_ends);
        if (variant == TABLE) launch_dependent(table_kernel, dim3(1), stream, p);
        launch_dependent(decode_kernel, decode_grid, stream, p, variant);
        launch_dependent(consumer_kernel, dim3(SMS), stream, p, sink);
    };
    double us[VARIANTS];
    std::vector<uint8_t> expected(scratch_bytes), got(scratch_bytes);
    cudaEvent_t begin, end;
    CHECK(cudaEventCreate(&begin));
    CHECK(cudaEventCreate(&end));
    for (int v = 0; v < VARIANTS; v++) {
        CHECK(cudaMemsetAsync(scratch, 0xff, scratch_bytes, stream));
        for (int i = 0; i < WARMUP; i++) iteration(v);
        CHECK(cudaEventRecord(begin, stream));
        for (int i = 0; i < ITERATIONS; i++) iteration(v);
        CHECK(cudaEventRecord(end, stream));
        CHECK(cudaEventSynchronize(end));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, begin, end));
        us[v] = 1000.0 * ms / ITERATIONS;
        CHECK(cudaMemcpy(v == KNOWN ? expected.data() : got.data(), scratch, scratch_bytes, cudaMemcpyDeviceToHost));
        if (v != KNOWN && got != expected) printf("%s: %s variant's scratch differs from the known layout's\n", c.name, VARIANT_NAMES[v]);
    }
    printf("%-34s E=%3d T=%5d K=%5d decode grid %4d x %3d | per iteration: known %7.2f us, derived %7.2f (%+5.2f), "
           "table %7.2f (%+5.2f)\n",
           c.name, experts, tokens, c.k, decode_grid.x, decode_grid.y, us[KNOWN], us[DERIVED], us[DERIVED] - us[KNOWN],
           us[TABLE], us[TABLE] - us[KNOWN]);
    CHECK(cudaEventDestroy(begin));
    CHECK(cudaEventDestroy(end));
    for (void *ptr : {(void *)offsets, (void *)device_ends, (void *)sink, (void *)p.table, (void *)packed, (void *)scratch})
        CHECK(cudaFree(ptr));
}

}  // namespace

int main() {
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const chain_case cases[] = {
        {"spec 4 (G=2, K=1536)", {128, 384}, 1536},
        {"spec 3 (G=2, K=4096)", {192, 320}, 4096},
        {"spec 2 (G=8, K=2048)", {40, 76, 168, 72, 164, 148, 196, 160}, 2048},
        {"spec 1 (G=8, K=7168)", {80, 176, 128, 72, 64, 248, 96, 160}, 7168},
        {"64 experts of 20 tokens, K=2048", std::vector<int>(64, 20), 2048},
    };
    printf("chain: previous (%lld us) -> [table] -> decode -> consumer (%lld us); %d iterations each\n",
           SPIN_NS / 1000, SPIN_NS / 1000, ITERATIONS);
    for (const chain_case &c : cases) run_case(c, stream);
    CHECK(cudaStreamDestroy(stream));
    return 0;
}
