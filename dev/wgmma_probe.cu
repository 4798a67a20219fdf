// wgmma_probe.cu: checks on a Hopper GPU, with the kernel's own wrappers (kernels/sm90_ptx.cuh, wgmma_rs.cuh),
// the facts the Hopper kernel's layout relies on; prints PASS or FAIL:
//   1. wgmma m64nNk16 with A from registers takes the same per-warp fragment layout as mma.m16n8k16
//      (warp w of the warpgroup holds rows 16w..16w+15) and returns the accumulator in the mma C layout;
//   2. a K-major B tile of 64 rows x 64 fp16 in shared memory with the 128-byte swizzle (16-byte chunk c of
//      row r stored at chunk c ^ (r % 8)) is described by swizzled_tile_descriptor, and its four k16 slices
//      by advancing the start address 32 bytes at a time;
//   3. the tensor cores keep fp16 subnormal inputs (the one-multiply decode produces them);
//   4. a bulk tensor copy (TMA) with the 128-byte swizzle lays the tile out exactly as in 2, completing on an
//      mbarrier, with the tensor map made through cudaGetDriverEntryPointByVersion (no link to libcuda) and
//      passed by value as a __grid_constant__ parameter.
// Build: make -C dev wgmma_probe (dev/README.md), then run /tmp/nvfp4_dev/wgmma_probe on an H200.
#include <cuda.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "sm90_ptx.cuh"
#include "wgmma_rs.cuh"

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        cudaError_t err_ = (call);                                                                   \
        if (err_ != cudaSuccess) {                                                                   \
            std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__, __LINE__,  \
                        cudaGetErrorString(err_));                                                   \
            return 1;                                                                                \
        }                                                                                            \
    } while (0)

constexpr int ROWS = 64, COLS = 64, DEPTH = 64;  // D[ROWS x COLS] = A[ROWS x DEPTH] . B[COLS x DEPTH]^T

__device__ uint32_t pack(const __half *row, int k) {
    __half2 h = __halves2half2(row[k], row[k + 1]);
    return *reinterpret_cast<uint32_t *>(&h);
}

// D = A . tile^T on one warpgroup; tile is the swizzled K-major B tile in shared memory.
__device__ void multiply(const __half *a, const __half *b_tile, float *d_out) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const __half *row_lo = a + (16 * warp + g) * DEPTH, *row_hi = row_lo + 8 * DEPTH;
    float d[COLS / 2];
    for (int i = 0; i < COLS / 2; i++) d[i] = 0.0f;
    for (int ks = 0; ks < DEPTH / 16; ks++) {
        const int k = ks * 16 + 2 * t;
        const uint32_t frag[4] = {pack(row_lo, k), pack(row_hi, k), pack(row_lo, k + 8), pack(row_hi, k + 8)};
        wgmma_fence();
        wgmma_rs<COLS>::mma(d, frag, swizzled_tile_descriptor(&b_tile[ks * 16]));
        wgmma_commit();
        wgmma_wait<0>();
    }
    for (int j = 0; j < COLS / 8; j++) {
        const int col = 8 * j + 2 * t, row = 16 * warp + g;
        d_out[row * COLS + col] = d[4 * j];
        d_out[row * COLS + col + 1] = d[4 * j + 1];
        d_out[(row + 8) * COLS + col] = d[4 * j + 2];
        d_out[(row + 8) * COLS + col + 1] = d[4 * j + 3];
    }
}

__global__ void probe_generic_stores(const __half *a, const __half *b, float *d_out) {
    __shared__ __align__(1024) __half b_tile[COLS * DEPTH];
    for (int i = threadIdx.x; i < COLS * DEPTH / 8; i += blockDim.x) {
        const int row = i / 8, chunk = i % 8;
        *reinterpret_cast<uint4 *>(&b_tile[row * DEPTH + (chunk ^ (row % 8)) * 8]) =
            *reinterpret_cast<const uint4 *>(&b[row * DEPTH + chunk * 8]);
    }
    fence_shared_for_async();
    __syncthreads();
    multiply(a, b_tile, d_out);
}

__global__ void probe_tma(const __half *a, const __grid_constant__ CUtensorMap b_map, float *d_out) {
    __shared__ __align__(1024) __half b_tile[COLS * DEPTH];
    __shared__ __align__(8) uint64_t full;
    if (threadIdx.x == 0) {
        barrier_init(&full, 1);
        fence_barrier_init();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        barrier_arrive_expect_bytes(&full, COLS * DEPTH * 2);
        tensor_copy(b_tile, &b_map, 0, 0, &full);
    }
    barrier_wait(&full, 0);
    multiply(a, b_tile, d_out);
}

static double worst_error(const std::vector<__half> &a, const std::vector<__half> &b, const std::vector<float> &d) {
    double worst = 0.0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            double want = 0.0;
            for (int k = 0; k < DEPTH; k++)
                want += double(__half2float(a[r * DEPTH + k])) * double(__half2float(b[c * DEPTH + k]));
            worst = std::fmax(worst, std::fabs(want - d[r * COLS + c]) / std::fmax(std::fabs(want), 1e-30));
        }
    return worst;
}

int main() {
    std::vector<__half> a(ROWS * DEPTH), b(COLS * DEPTH);
    std::srand(1);
    for (auto &x : a) x = __float2half(float(std::rand() % 17 - 8) * 0.25f);
    for (auto &x : b) x = __float2half(float(std::rand() % 13 - 6) * 0.5f);
    // Row 0 of a is all 2^-17 (an fp16 subnormal) and row 0 of b all ones: D[0][0] must be 64 * 2^-17 = 2^-11.
    for (int k = 0; k < DEPTH; k++) a[k] = __float2half(std::ldexp(1.0f, -17)), b[k] = __float2half(1.0f);
    __half *da, *db;
    float *dd;
    CHECK(cudaMalloc(&da, a.size() * 2));
    CHECK(cudaMalloc(&db, b.size() * 2));
    CHECK(cudaMalloc(&dd, ROWS * COLS * 4));
    CHECK(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice));

    void *entry = nullptr;
    cudaDriverEntryPointQueryResult found;
    CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !entry) {
        std::printf("FAIL: cuTensorMapEncodeTiled not found\n");
        return 1;
    }
    CUtensorMap b_map;
    const cuuint64_t dims[2] = {DEPTH, COLS}, strides[1] = {DEPTH * 2};
    const cuuint32_t box[2] = {DEPTH, COLS}, unit[2] = {1, 1};
    CUresult made = reinterpret_cast<encode_tiled_fn>(entry)(
        &b_map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, db, dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
        CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (made != CUDA_SUCCESS) {
        std::printf("FAIL: cuTensorMapEncodeTiled returned %d\n", int(made));
        return 1;
    }

    bool pass = true;
    for (int variant = 0; variant < 2; variant++) {
        CHECK(cudaMemset(dd, 0xFF, ROWS * COLS * 4));
        if (variant == 0) probe_generic_stores<<<1, 128>>>(da, db, dd);
        else probe_tma<<<1, 128>>>(da, b_map, dd);
        CHECK(cudaGetLastError());
        CHECK(cudaDeviceSynchronize());
        std::vector<float> d(ROWS * COLS);
        CHECK(cudaMemcpy(d.data(), dd, d.size() * 4, cudaMemcpyDeviceToHost));
        const double worst = worst_error(a, b, d);
        const bool subnormal_ok = d[0] == std::ldexp(1.0f, -11);
        std::printf("%s: worst relative error %.3g, subnormal row %s (D[0][0] = %g)\n",
                    variant == 0 ? "generic stores + wgmma" : "TMA + mbarrier + wgmma", worst,
                    subnormal_ok ? "exact" : "WRONG", d[0]);
        pass = pass && worst < 1e-6 && subnormal_ok;
    }
    std::printf("%s\n", pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
}
