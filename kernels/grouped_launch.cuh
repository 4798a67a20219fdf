// grouped_launch.cuh: what every kernel family shares about a grouped launch: the parameter block
// (group table by value, or a pointer to it in device memory), finding the group of a tile, and launching
// with the smallest parameter block that holds the table.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "group_table.h"
#include "launchers.h"

constexpr int SMALL_TABLE = 8;                      // groups by value in a ~1 KB parameter block
constexpr int LARGE_TABLE = NVFP4_INLINE_CAPACITY;  // groups by value in a ~4 KB parameter block

template <int CAPACITY>
struct grouped_params {
    const nvfp4_group_entry *device_table;  // non-null: the table lives in device memory
    int32_t num_entries;
    int32_t total_tiles;         // what tile_start counts (a bound when bounded_grid)
    const float *alpha;          // a factor per entry, or null
    int32_t out_bf16;            // c holds bfloat16
    int32_t bounded_grid;        // the grid is a bound: CTAs past the last entry's tiles exit
    nvfp4_group_entry entries[CAPACITY];
};
static_assert(sizeof(grouped_params<LARGE_TABLE>) <= 4096, "the by-value table must fit the 4 KB parameter space");

// The entry whose tiles include `tile`: the last one whose tile_start <= tile.
template <int CAPACITY>
__device__ __forceinline__ const nvfp4_group_entry *find_group(const grouped_params<CAPACITY> &params, int tile) {
    const nvfp4_group_entry *table = params.device_table ? params.device_table : params.entries;
    int lo = 0, hi = params.num_entries - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (table[mid].tile_start <= tile) lo = mid;
        else hi = mid - 1;
    }
    return &table[lo];
}

// One CTA's output tile of the portable kernel: its group, batch slice and first row of a (m0) and of b
// (n0). Consecutive tiles walk M first, so the CTAs that share a tile of b (the wide weight operand) run
// together.
struct tile_coords {
    const nvfp4_group_entry *group;
    int slice, m0, n0;
};

template <int CAPACITY>
__device__ __forceinline__ tile_coords locate_tile(const grouped_params<CAPACITY> &params, int tile) {
    const nvfp4_group_entry *g = find_group(params, tile);
    const int tiles_m = (g->m + NVFP4_TILE_M - 1) / NVFP4_TILE_M;
    const int tiles_n = (g->n + NVFP4_TILE_N - 1) / NVFP4_TILE_N;
    const int local = tile - g->tile_start;
    const int slice = local / (tiles_m * tiles_n);
    const int in_slice = local - slice * tiles_m * tiles_n;
    return tile_coords{g, slice, (in_slice % tiles_m) * NVFP4_TILE_M, (in_slice / tiles_m) * NVFP4_TILE_N};
}

// A driver function found through the runtime, so that nothing links libcuda; null if the driver lacks it.
inline void *driver_entry_point(const char *name) {
    void *entry = nullptr;
    cudaDriverEntryPointQueryResult found;
#if CUDART_VERSION >= 12050
    const cudaError_t looked_up = cudaGetDriverEntryPointByVersion(name, &entry, 12000, cudaEnableDefault, &found);
#else
    const cudaError_t looked_up = cudaGetDriverEntryPoint(name, &entry, cudaEnableDefault, &found);
#endif
    return looked_up == cudaSuccess && found == cudaDriverEntryPointSuccess ? entry : nullptr;
}

// Launches `kernel` through the driver's cuLaunchKernel with the kernel's function handle, looked up once per
// device (`handles`, one slot per device, owned by the caller). The triple-chevron launch goes through the
// runtime, which looks the kernel up again on every call; this path costs 0.2-0.4 us less host time a call
// (measured on an H200 host). A CUresult passes through as the cudaError_t of the same value: CUDA 13 gives 98
// of its 100 driver errors a runtime code of that value, and the other two (context already current, key
// rotation) are not errors of a launch.
typedef CUresult (*launch_kernel_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                     CUstream, void **, void **);

typedef CUresult (*launch_kernel_ex_fn)(const CUlaunchConfig *, CUfunction, void **, void **);

// The kernel's function handle on this device, looked up once (`handles`, one slot per device).
template <typename Params>
cudaError_t kernel_handle(void (*kernel)(Params), CUfunction handles[NVFP4_MAX_DEVICES], int device,
                          CUfunction *handle) {
    if (!handles[device]) {
        cudaFunction_t found;
        const cudaError_t failed = cudaGetFuncBySymbol(&found, reinterpret_cast<const void *>(kernel));
        if (failed != cudaSuccess) return failed;
        handles[device] = reinterpret_cast<CUfunction>(found);
    }
    *handle = handles[device];
    return cudaSuccess;
}

template <typename Params>
cudaError_t launch_kernel(void (*kernel)(Params), CUfunction handles[NVFP4_MAX_DEVICES], int device, dim3 grid,
                          int threads, int shared_bytes, cudaStream_t stream, Params &params) {
    static const launch_kernel_fn launch =  // thread-safe first use
        reinterpret_cast<launch_kernel_fn>(driver_entry_point("cuLaunchKernel"));
    if (!launch) return cudaErrorNotSupported;
    CUfunction handle;
    const cudaError_t failed = kernel_handle(kernel, handles, device, &handle);
    if (failed != cudaSuccess) return failed;
    void *args[] = {&params};
    return static_cast<cudaError_t>(launch(handle, grid.x, grid.y, grid.z, threads, 1, 1, shared_bytes,
                                           reinterpret_cast<CUstream>(stream), args, nullptr));
}

// launch_kernel for a kernel that depends on the one before it in the stream through programmatic dependent
// launch: it may start once every block of that kernel has run griddepcontrol.launch_dependents (or exited),
// and must run griddepcontrol.wait (dependency_wait) before it reads what that kernel writes.
template <typename Params>
cudaError_t launch_dependent_kernel(void (*kernel)(Params), CUfunction handles[NVFP4_MAX_DEVICES], int device,
                                    dim3 grid, int threads, int shared_bytes, cudaStream_t stream, Params &params) {
    static const launch_kernel_ex_fn launch =  // thread-safe first use
        reinterpret_cast<launch_kernel_ex_fn>(driver_entry_point("cuLaunchKernelEx"));
    if (!launch) return cudaErrorNotSupported;
    CUfunction handle;
    const cudaError_t failed = kernel_handle(kernel, handles, device, &handle);
    if (failed != cudaSuccess) return failed;
    CUlaunchAttribute attribute = {};
    attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig config = {};
    config.gridDimX = grid.x, config.gridDimY = grid.y, config.gridDimZ = grid.z;
    config.blockDimX = threads, config.blockDimY = 1, config.blockDimZ = 1;
    config.sharedMemBytes = shared_bytes;
    config.hStream = reinterpret_cast<CUstream>(stream);
    config.attrs = &attribute;
    config.numAttrs = 1;
    void *args[] = {&params};
    return static_cast<cudaError_t>(launch(&config, handle, args, nullptr));
}

// Builds a parameter block of CAPACITY entries (the table by value, or only the pointer to it when
// device_table is set) and hands it to Family<CAPACITY>::launch, which completes it (a family's own fields)
// and launches; it returns an error it found before launching, or cudaSuccess.
template <template <int> class Family, int CAPACITY>
int launch_with_capacity(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                         int32_t num_entries, const nvfp4_launch_shape &shape, cudaStream_t stream) {
    grouped_params<CAPACITY> params;  // entries past those copied stay unwritten: never read
    params.device_table = device_table, params.num_entries = num_entries;
    params.total_tiles = shape.units;
    params.alpha = shape.alpha, params.out_bf16 = shape.out_bf16, params.bounded_grid = shape.bounded_grid;
    if (!device_table) memcpy(params.entries, host_entries, sizeof(nvfp4_group_entry) * (size_t)num_entries);
    const cudaError_t failed = Family<CAPACITY>::launch(params, shape, stream);
    return failed != cudaSuccess ? failed : cudaGetLastError();
}

// Launches with the smallest parameter block that holds the table.
template <template <int> class Family>
int launch_grouped(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table, int32_t num_entries,
                   const nvfp4_launch_shape *shape, void *stream_handle) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_handle);
    if (device_table) return launch_with_capacity<Family, 1>(nullptr, device_table, num_entries, *shape, stream);
    if (num_entries <= SMALL_TABLE)
        return launch_with_capacity<Family, SMALL_TABLE>(host_entries, nullptr, num_entries, *shape, stream);
    if (num_entries <= LARGE_TABLE)
        return launch_with_capacity<Family, LARGE_TABLE>(host_entries, nullptr, num_entries, *shape, stream);
    return cudaErrorInvalidValue;
}
