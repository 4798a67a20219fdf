// sm90_ptx.cuh: inline-PTX wrappers for the Hopper (sm_90a) features that kernels/hopper_streamk.cu and the
// probes in dev/ use: shared-memory addresses, mbarriers, bulk and bulk tensor copies (TMA), tensor maps retargeted
// on the device, proxy fences, register reallocation (setmaxnreg), and wgmma's group fence, commit and wait and its
// shared-memory descriptor (the wgmma themselves are generated: wgmma_rs.cuh with A from registers, wgmma_ss.cuh
// with A from shared memory). One copy, so that a probe issues exactly the instructions the
// kernel does. Nothing here is specific to NVFP4 or to the kernel's tile shapes. Calling any of it needs sm_90a.
#pragma once

#include <cuda.h>
#include <stdint.h>

// ---- Addresses and mbarriers --------------------------------------------------------------------------------

// The 32-bit shared-window address that PTX's shared::cta operands take.
__device__ __forceinline__ uint32_t shared_address(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void barrier_init(uint64_t *bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(arrivals));
}

// After one thread's barrier_init calls and before a __syncthreads: makes the initialised barriers visible to
// the other threads and to the bulk copies (async proxy) that complete on them.
__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void barrier_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}

// An arrival that also expects `bytes` more to land on the barrier (its transaction count): the phase
// completes once every arrival is in and every expected byte has landed.
__device__ __forceinline__ void barrier_arrive_expect_bytes(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
                 : "memory");
}

// Waits until the barrier's phase of the given parity has completed.
__device__ __forceinline__ void barrier_wait(uint64_t *bar, uint32_t parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "waiting:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra waiting;\n"
        "}\n" ::"r"(shared_address(bar)),
        "r"(parity)
        : "memory");
}

// ---- Bulk copies --------------------------------------------------------------------------------------------

// Bulk asynchronous copy global -> shared of `bytes` (a multiple of 16, both addresses 16-byte aligned); the
// bytes count against the barrier's transaction count as they land.
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     shared_address(dst)),
                 "l"(src), "r"(bytes), "r"(shared_address(bar))
                 : "memory");
}

// An L2 eviction policy for bulk copies: evict_first for data read once (streamed weights), evict_last for data
// read again by other CTAs (decoded tokens), so the streamed bytes do not push the reused ones out of L2.
__device__ __forceinline__ uint64_t l2_policy_evict_first() {
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
    return policy;
}

__device__ __forceinline__ uint64_t l2_policy_evict_last() {
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(policy));
    return policy;
}

// bulk_copy with an L2 eviction policy (l2_policy_*).
__device__ __forceinline__ void bulk_copy_hinted(void *dst, const void *src, uint32_t bytes, uint64_t *bar,
                                                 uint64_t policy) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(
            shared_address(dst)),
        "l"(src), "r"(bytes), "r"(shared_address(bar)), "l"(policy)
        : "memory");
}

// 16 bytes global -> shared through the load path (cp.async, L1 bypassed), with an L2 eviction policy: many small
// pieces cost one load instruction each here, where each would be a request of its own to the bulk copy unit.
__device__ __forceinline__ void copy16_async(void *dst, const void *src, uint64_t policy) {
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src),
                 "l"(policy)
                 : "memory");
}

// One arrival on the barrier once every copy16_async this thread issued before has landed (noinc: the barrier's
// arrival count must include it).
__device__ __forceinline__ void barrier_arrive_on_copies(uint64_t *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(bar)) : "memory");
}

// Bulk tensor copy of the map's box at (element x, row y) of a 2-D tensor into shared memory (aligned to the
// map's swizzle atom, laid out in the map's swizzle); elements past the tensor's ends read as zeros, and the
// whole box counts against the barrier's transaction count. `map` is in global memory or a __grid_constant__
// parameter.
__device__ __forceinline__ void tensor_copy(void *dst, const CUtensorMap *map, int x, int y, uint64_t *bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
            shared_address(dst)),
        "l"(map), "r"(x), "r"(y), "r"(shared_address(bar))
        : "memory");
}

// tensor_copy with an L2 eviction policy (l2_policy_*).
__device__ __forceinline__ void tensor_copy_hinted(void *dst, const CUtensorMap *map, int x, int y, uint64_t *bar,
                                                   uint64_t policy) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], "
        "[%4], %5;\n" ::"r"(shared_address(dst)),
        "l"(map), "r"(x), "r"(y), "r"(shared_address(bar)), "l"(policy)
        : "memory");
}

// ---- Tensor maps --------------------------------------------------------------------------------------------

// cuTensorMapEncodeTiled, to be found through the runtime (cudaGetDriverEntryPointByVersion) so that nothing
// links libcuda.
typedef CUresult (*encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                    const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// Points the tensor map in shared memory at a row-major byte matrix: `rows` rows of `row_bytes` bytes, `stride`
// bytes apart, from `base` (the template's data type, box and swizzle stay).
__device__ __forceinline__ void retarget_tensor_map(CUtensorMap *map, const void *base, uint32_t row_bytes,
                                                    uint32_t rows, uint64_t stride) {
    const uint32_t address = shared_address(map);
    asm volatile("tensormap.replace.tile.global_address.shared::cta.b1024.b64 [%0], %1;\n" ::"r"(address), "l"(base)
                 : "memory");
    asm volatile("tensormap.replace.tile.global_dim.shared::cta.b1024.b32 [%0], 0, %1;\n" ::"r"(address), "r"(row_bytes)
                 : "memory");
    asm volatile("tensormap.replace.tile.global_dim.shared::cta.b1024.b32 [%0], 1, %1;\n" ::"r"(address), "r"(rows)
                 : "memory");
    asm volatile("tensormap.replace.tile.global_stride.shared::cta.b1024.b64 [%0], 0, %1;\n" ::"r"(address), "l"(stride)
                 : "memory");
}

// Warp-wide: copies a tensor map from shared to global memory and releases it to the tensor-map proxy.
__device__ __forceinline__ void publish_tensor_map(CUtensorMap *global_map, const CUtensorMap *shared_map) {
    asm volatile(
        "tensormap.cp_fenceproxy.global.shared::cta.tensormap::generic.release.gpu.sync.aligned [%0], [%1], 128;\n" ::"l"(
            global_map),
        "r"(shared_address(shared_map))
        : "memory");
}

// Makes a published tensor map visible to this thread's bulk tensor copies.
__device__ __forceinline__ void acquire_tensor_map(const CUtensorMap *global_map) {
    asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;\n" ::"l"(global_map) : "memory");
}

// ---- Programmatic dependent launch (launch_dependent_kernel in grouped_launch.cuh)

// The kernel after this one in the stream may start (once every block of this one has said so, or exited).
__device__ __forceinline__ void dependents_may_launch() {
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// Waits until the kernels this one depends on have finished and their writes are visible. A no-op when the kernel
// was launched without a programmatic dependency.
__device__ __forceinline__ void dependency_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }

// ---- Matrix stores -------------------------------------------------------------------------------------------

// Warp-wide: four 8x8 matrices of 16-bit values from registers to shared memory, transposed. Register i holds this
// lane's part of matrix i in the mma accumulator layout (row lane / 4, columns 2 (lane % 4) and + 1, the first in
// the low half); column c of matrix i is stored as 16 bytes at the address that lane 8 i + c gives (16-byte aligned).
__device__ __forceinline__ void store_matrices_transposed(uint32_t address, uint32_t r0, uint32_t r1, uint32_t r2,
                                                          uint32_t r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(address), "r"(r0),
                 "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
}

// ---- Fences and registers -----------------------------------------------------------------------------------

// Generic-proxy writes to shared memory become visible to the tensor cores' reads (async proxy).
__device__ __forceinline__ void fence_shared_for_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Warpgroup-wide: lowers (dec) or raises (inc) this warpgroup's registers per thread to REGISTERS, a multiple of
// 8 in 24..256, so that one role can hand registers to another. What all warpgroups end up asking for must fit
// what the launch holds, or setmaxnreg.inc waits forever.
template <int REGISTERS>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGISTERS));
}

template <int REGISTERS>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGISTERS));
}

// ---- wgmma --------------------------------------------------------------------------------------------------

// Shared-memory descriptor of a K-major fp16 tile of 128-byte rows (64 halves) with the 128-byte swizzle
// (16-byte chunk c of row r at chunk c ^ (r % 8), 8-row atoms of 1024 bytes, tile 1024-byte aligned); the
// leading byte offset is unused in this mode. The k16 slices of the tile start 32 bytes apart.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void *tile) {
    const uint64_t address = shared_address(tile);
    return ((address >> 4) & 0x3FFFull) | (1ull << 16) | (uint64_t(1024 >> 4) << 32) | (1ull << 62);
}

// Warpgroup-wide. A group of wgmma: wgmma_fence before the first (orders the registers it reads and the
// accumulators after other writes), wgmma_commit after the last; wgmma_wait<N> returns once at most N committed
// groups of this thread are still in flight. The accumulators and A registers of an in-flight group must not be
// touched, and a branch between fence and commit makes ptxas close the group early with a dummy wgmma.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
