// hopper_gemm.cu: the Hopper (sm_90a) NVFP4 grouped GEMM, c = (a*sfa) @ (b*sfb)^T, on wgmma.
//
// Work unit: 128 weight rows (rows of b, columns of c) of one group and batch slice, by one token tile (rows
// of a) of at most params.token_tile <= 192 rows, which the planner chooses per call (nvfp4_schedule_units)
// and which each group splits evenly into multiples of 8 rows (group_table.h). The operands are swapped on
// the tensor cores: the weights sit on wgmma's 64-row side, decoded in registers straight into the A
// fragments; the tokens are wgmma's n side (n = the tile's rows rounded up to 8, one instruction per k16
// step), read by descriptor from a 128-byte-swizzled fp16 tile in shared memory.
//
// Persistent grid: CTA i runs units i, i + gridDim.x, ...; its three roles walk that same sequence and meet
// only at mbarriers. 512 threads, one CTA per SM:
//  - warpgroup 0, the copiers: per 128-K stage of a unit, 16-byte asynchronous copies (cp.async; the planner
//    has checked every row and atom is 16-byte aligned) of the 128 packed weight rows, the tile's packed
//    token rows and their 512-byte scale atoms into one of three stage buffers; each thread's copies arrive
//    on the stage's `full` mbarrier when they land, and a stage is refilled once its `empty` mbarrier says
//    every reader is done. Addresses advance by pointer steps: with one copier warp and per-copy address
//    arithmetic the copies, not the math, set the pace (bench/NOTES.md, Hopper v2).
//  - warpgroup 1, the token decoders: per 64-K block, decode the stage's token rows into one of four fp16
//    tiles (one thread per row and 16-element scale group), once for both consumers.
//  - warpgroups 2 and 3, the consumers, 64 weight rows each: per 64-K block, issue the block's wgmma on
//    fragments decoded earlier, then decode the next block's fragments from the stage while up to three
//    blocks' wgmma run (three fragment sets: the wgmma latency, not its rate, limited one and two).
//    After the unit's last block: accumulators * 2^14 rounded to fp16, transposed through shared memory,
//    written to c with 16-byte stores.
// Warpgroups 0-1 give registers to the consumers (setmaxnreg), which hold 96 fp32 accumulators each.
//
// K is permuted inside each 64-K block so that a thread reads contiguous bytes: lane t of a quad reads
// original k in [16t, 16t + 16) (one scale group) of its rows and decodes them into 8 half2 pairs
// (dequant_e2m1x8_paired); pair p fills fragment slots 2t, 2t+1 (p even) or 2t+8, 2t+9 (p odd) of k16
// step p / 2. The token decode puts pair p at the same wgmma k index, so every dot product is unchanged.
// Decoded values carry 2^-7 each (nvfp4.cuh), removed in the epilogue.
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "grouped_launch.cuh"
#include "launchers.h"
#include "nvfp4.cuh"

namespace {

constexpr int KBLOCK = 64;                         // K elements per 64-K block: 4 scales per row, 4 k16 steps
constexpr int KBLOCK_BYTES = KBLOCK / 2;           // packed bytes per row and block
constexpr int STAGE_KBLOCKS = 2;                   // 64-K blocks per pipeline stage
constexpr int ROW_PITCH = STAGE_KBLOCKS * KBLOCK_BYTES + 16;  // staged rows 80 bytes apart: 8 rows read at once
                                                              // spread over the banks
constexpr int STAGES = 3;
constexpr int DECODED_TILES = 4;
constexpr int WGMMA_IN_FLIGHT = 3;                 // a consumer's wgmma groups in flight: 3 fragment sets
constexpr int WEIGHT_ROWS = NVFP4_TILE_N;          // per unit
constexpr int CONSUMER_ROWS = 64;                  // per consumer warpgroup: wgmma's M
constexpr int MAX_TOKENS = NVFP4_MAX_TOKEN_TILE;   // per unit
constexpr int CHUNK = 64;                          // tokens per epilogue pass
constexpr int CHUNKS = MAX_TOKENS / CHUNK;
constexpr int TOKEN_ROWBLOCKS = (MAX_TOKENS - 1) / NVFP4_SF_ATOM_ROWS + 2;  // scale atom rows a tile can touch
constexpr int EPILOGUE_PITCH = CHUNK * 2 + 16;     // bytes per token row of the epilogue's transposed tile
constexpr int PRODUCERS = 2, CONSUMERS = 2;        // warpgroups
constexpr int COPIER_WARPS = 4, DECODER_WARPS = 4 * PRODUCERS - COPIER_WARPS;
constexpr int COPIER_THREADS = 32 * COPIER_WARPS;
constexpr int CONSUMER_WARPS = 4 * CONSUMERS;
constexpr int DECODER_THREADS = 32 * DECODER_WARPS;
constexpr int THREADS = 128 * (PRODUCERS + CONSUMERS);
constexpr int PRODUCER_REGISTERS = 72;  // setmaxnreg: 256 x 72 + 256 x 184 = 512 x 128, what the launch holds
constexpr int CONSUMER_REGISTERS = 184;
static_assert(PRODUCERS * 128 * PRODUCER_REGISTERS + CONSUMERS * 128 * CONSUMER_REGISTERS <= 65536,
              "setmaxnreg.inc waits forever for registers the launch does not hold");
static_assert(CONSUMERS * CONSUMER_ROWS == WEIGHT_ROWS, "the consumers cover the unit's weight rows");

struct stage_buffers {
    uint8_t weights[WEIGHT_ROWS * ROW_PITCH];
    uint8_t tokens[MAX_TOKENS * ROW_PITCH];
    uint8_t weight_scales[STAGE_KBLOCKS][NVFP4_SF_ATOM_BYTES];
    uint8_t token_scales[TOKEN_ROWBLOCKS][STAGE_KBLOCKS][NVFP4_SF_ATOM_BYTES];
};

struct shared_storage {
    __half decoded[DECODED_TILES][MAX_TOKENS * KBLOCK];  // 1024-byte aligned: the swizzle's 8-row atoms
    stage_buffers stages[STAGES];
    uint8_t epilogue[CONSUMERS][CHUNK * EPILOGUE_PITCH];
    uint64_t stage_full[STAGES], stage_empty[STAGES];
    uint64_t decoded_full[DECODED_TILES], decoded_empty[DECODED_TILES];
};
constexpr size_t SHARED_BYTES = sizeof(shared_storage) + 1024;  // + room to align the base to 1024

// ---- PTX wrappers -------------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t shared_address(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void barrier_init(uint64_t *bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(arrivals));
}

__device__ __forceinline__ void barrier_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
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

// 16-byte asynchronous copy global -> shared (cp.async, L2 only); both addresses 16-byte aligned.
__device__ __forceinline__ void copy_16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(dst)), "l"(src) : "memory");
}

// One arrival on the barrier once every cp.async this thread has issued so far has landed.
__device__ __forceinline__ void barrier_arrive_after_copies(uint64_t *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(bar)) : "memory");
}

// Generic-proxy writes to shared memory become visible to the tensor cores' reads (async proxy).
__device__ __forceinline__ void fence_shared_for_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void sync_consumer(int consumer) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(1 + consumer) : "memory");  // barrier 0 is __syncthreads
}

// wgmma descriptor of a K-major tile of 128-byte rows with the 128-byte swizzle (8-row atoms of 1024 bytes);
// the leading byte offset is unused in this mode.
__device__ __forceinline__ uint64_t swizzled_tile_descriptor(const void *tile) {
    const uint64_t address = shared_address(tile);
    return ((address >> 4) & 0x3FFFull) | (1ull << 16) | (uint64_t(1024 >> 4) << 32) | (1ull << 62);
}

// wgmma m64nNk16, f32 += f16 * f16, A from registers, B K-major from shared memory, N = a token tile (a
// multiple of 8 up to MAX_TOKENS) in one instruction: A is read from registers once per k16 step for all the
// tokens (the asm operand lists have to be spelled out per N).
template <int N>
struct wgmma_tokens;

template <>
struct wgmma_tokens<8> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, %8, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<16> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, "
            "{%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<24> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %17, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n24k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11}, "
            "{%12, %13, %14, %15}, %16, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<32> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
            "{%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<40> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %25, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n40k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19}, "
            "{%20, %21, %22, %23}, %24, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<48> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %29, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n48k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23}, "
            "{%24, %25, %26, %27}, %28, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<56> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %33, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n56k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27}, "
            "{%28, %29, %30, %31}, %32, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<64> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
            "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<72> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %41, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n72k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35}, "
            "{%36, %37, %38, %39}, %40, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<80> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %45, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n80k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39}, "
            "{%40, %41, %42, %43}, %44, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<88> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %49, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n88k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43}, "
            "{%44, %45, %46, %47}, %48, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<96> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %53, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n96k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, "
            "{%48, %49, %50, %51}, %52, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<104> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %57, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n104k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51}, "
            "{%52, %53, %54, %55}, %56, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<112> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %61, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n112k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55}, "
            "{%56, %57, %58, %59}, %60, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<120> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %65, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n120k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59}, "
            "{%60, %61, %62, %63}, %64, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<128> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
            "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<136> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %73, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n136k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67}, "
            "{%68, %69, %70, %71}, %72, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<144> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %77, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n144k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71}, "
            "{%72, %73, %74, %75}, %76, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<152> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %81, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n152k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75}, "
            "{%76, %77, %78, %79}, %80, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<160> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %85, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n160k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, "
            "{%80, %81, %82, %83}, %84, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<168> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %89, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n168k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
            " %80, %81, %82, %83}, "
            "{%84, %85, %86, %87}, %88, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
              "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<176> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %93, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n176k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
            " %80, %81, %82, %83, %84, %85, %86, %87}, "
            "{%88, %89, %90, %91}, %92, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
              "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<184> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %97, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n184k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
            " %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91}, "
            "{%92, %93, %94, %95}, %96, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
              "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
              "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

template <>
struct wgmma_tokens<192> {
    static __device__ __forceinline__ void run(float (&d)[MAX_TOKENS / 2], const uint32_t (&a)[4], uint64_t b_desc) {
        asm volatile(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %101, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
            " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
            " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
            " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
            " %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
            " %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
            "{%96, %97, %98, %99}, %100, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
              "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
              "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
              "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
              "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
    }
};

// ---- Work units ---------------------------------------------------------------------------------------------

struct unit_coords {
    const nvfp4_group_entry *group;
    int slice;
    int m0, rows;  // token rows m0 .. m0 + rows - 1
    int n0;        // weight rows n0 .. n0 + 127 (fewer at the end of b)
};

// Units of a group walk its token tiles first, so the units that share a weight tile run together.
template <int CAPACITY>
__device__ __forceinline__ unit_coords locate_unit(const grouped_params<CAPACITY> &params, int unit) {
    const nvfp4_group_entry *g = find_group(params, unit);
    const int tile_rows = nvfp4_token_tile_rows(g->m, params.token_tile);
    const int tiles_m = (g->m + tile_rows - 1) / tile_rows;
    const int tiles_n = (g->n + WEIGHT_ROWS - 1) / WEIGHT_ROWS;
    const int local = unit - g->tile_start;
    const int slice = local / (tiles_m * tiles_n);
    const int in_slice = local - slice * tiles_m * tiles_n;
    const int m0 = (in_slice % tiles_m) * tile_rows;
    return unit_coords{g, slice, m0, min(tile_rows, g->m - m0), (in_slice / tiles_m) * WEIGHT_ROWS};
}

// Stage and 64-K block counters run on across units; a ring position and the parity of its current use.
struct ring_position {
    int index;
    uint32_t parity;
};

__device__ __forceinline__ ring_position ring_at(int count, int size) {
    return ring_position{count % size, static_cast<uint32_t>((count / size) & 1)};
}

// One row's share of one 64-K block: 8 packed bytes (16 e2m1 values, one scale group) and that scale
// (0 for rows past the end, which turns whatever the buffer holds into zeros).
struct row_part {
    uint2 packed;
    uint32_t scale;
};

// The 8 half2 pairs of a row part (dequant_e2m1x8_paired's pairing). Weights and tokens both go through
// here, so pair p holds the same original k on both sides.
__device__ __forceinline__ void decode_row_part(const row_part &part, uint32_t (&pairs)[8]) {
    const __half2 scale = __half2half2(e4m3_to_scaled_half(part.scale));
    uint32_t (&first)[4] = *reinterpret_cast<uint32_t(*)[4]>(&pairs[0]);
    uint32_t (&second)[4] = *reinterpret_cast<uint32_t(*)[4]>(&pairs[4]);
    dequant_e2m1x8_paired(part.packed.x, scale, first);
    dequant_e2m1x8_paired(part.packed.y, scale, second);
}

// ---- Copiers (warpgroup 0) ---------------------------------------------------------------------------------

template <int CAPACITY>
__device__ void run_copier(const grouped_params<CAPACITY> &params, shared_storage &shared, int thread) {
    int stage_count = 0;
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x) {
        const unit_coords u = locate_unit(params, unit);
        const nvfp4_group_entry &g = *u.group;
        const uint8_t *a = g.a + u.slice * g.a_batch_stride, *b = g.b + u.slice * g.b_batch_stride;
        const uint8_t *sfa = g.sfa + u.slice * g.sfa_batch_stride, *sfb = g.sfb + u.slice * g.sfb_batch_stride;
        const int kblocks = g.k / KBLOCK, weight_rows = min(WEIGHT_ROWS, g.n - u.n0);
        const int first_rowblock = u.m0 / NVFP4_SF_ATOM_ROWS;
        const int token_rowblocks = (u.m0 + u.rows - 1) / NVFP4_SF_ATOM_ROWS - first_rowblock + 1;
        for (int kb0 = 0; kb0 < kblocks; kb0 += STAGE_KBLOCKS, stage_count++) {
            const ring_position stage = ring_at(stage_count, STAGES);
            stage_buffers &buffers = shared.stages[stage.index];
            const int stage_kblocks = min(STAGE_KBLOCKS, kblocks - kb0);
            const int row_bytes = stage_kblocks * KBLOCK_BYTES;
            barrier_wait(&shared.stage_empty[stage.index], stage.parity ^ 1);
            // Thread t copies 16-byte piece t % pieces of rows t / pieces, t / pieces + 128 / pieces, ...: pointer
            // steps only, since the copiers' address arithmetic is on the critical path.
            const int pieces = row_bytes / 16, rows_per_pass = COPIER_THREADS / pieces;  // pieces: 2 or 4
            const int first_row = thread / pieces, piece_offset = (thread % pieces) * 16;
            {
                const uint8_t *src = b + (int64_t)(u.n0 + first_row) * g.b_row_stride + kb0 * KBLOCK_BYTES + piece_offset;
                uint8_t *dst = buffers.weights + first_row * ROW_PITCH + piece_offset;
                const int64_t src_step = (int64_t)rows_per_pass * g.b_row_stride;
                for (int r = first_row; r < weight_rows; r += rows_per_pass, src += src_step, dst += rows_per_pass * ROW_PITCH)
                    copy_16(dst, src);
            }
            {
                const uint8_t *src = a + (int64_t)(u.m0 + first_row) * g.a_row_stride + kb0 * KBLOCK_BYTES + piece_offset;
                uint8_t *dst = buffers.tokens + first_row * ROW_PITCH + piece_offset;
                const int64_t src_step = (int64_t)rows_per_pass * g.a_row_stride;
                for (int r = first_row; r < u.rows; r += rows_per_pass, src += src_step, dst += rows_per_pass * ROW_PITCH)
                    copy_16(dst, src);
            }
            constexpr int ATOM_PIECES = NVFP4_SF_ATOM_BYTES / 16;
            for (int i = thread; i < stage_kblocks * (1 + token_rowblocks) * ATOM_PIECES; i += COPIER_THREADS) {
                const int atom = i / ATOM_PIECES, piece = i % ATOM_PIECES;
                const int kb = atom % stage_kblocks, rowblock = atom / stage_kblocks - 1;  // -1: the weights' atom
                const int64_t kblock_offset = (int64_t)(kb0 + kb);
                if (rowblock < 0)
                    copy_16(buffers.weight_scales[kb] + piece * 16,
                            sfb + (int64_t)(u.n0 / NVFP4_SF_ATOM_ROWS) * g.sfb_rowblock_stride +
                                kblock_offset * g.sfb_kblock_stride + piece * 16);
                else
                    copy_16(buffers.token_scales[rowblock][kb] + piece * 16,
                            sfa + (int64_t)(first_rowblock + rowblock) * g.sfa_rowblock_stride +
                                kblock_offset * g.sfa_kblock_stride + piece * 16);
            }
            barrier_arrive_after_copies(&shared.stage_full[stage.index]);
        }
    }
}

// ---- Token decoders (warpgroup 1) --------------------------------------------------------------------------

template <int CAPACITY>
__device__ void run_token_decoder(const grouped_params<CAPACITY> &params, shared_storage &shared, int thread) {
    const int lane = thread % 32;
    int stage_count = 0, block_count = 0;
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x) {
        const unit_coords u = locate_unit(params, unit);
        const int kblocks = u.group->k / KBLOCK, token_count = (u.rows + 7) / 8 * 8;
        const int first_rowblock = u.m0 / NVFP4_SF_ATOM_ROWS;
        for (int kb = 0; kb < kblocks; kb++, block_count++) {
            const ring_position stage = ring_at(stage_count, STAGES), tile = ring_at(block_count, DECODED_TILES);
            const int kb_in_stage = kb % STAGE_KBLOCKS;
            if (kb_in_stage == 0) barrier_wait(&shared.stage_full[stage.index], stage.parity);
            barrier_wait(&shared.decoded_empty[tile.index], tile.parity ^ 1);
            const stage_buffers &buffers = shared.stages[stage.index];
            __half *decoded = shared.decoded[tile.index];
            // Thread t decodes scale group t % 4 of rows t / 4, t / 4 + 32, ...: (row, group) parts of 8 bytes.
            // Its pair c goes to k16 step c / 2, slots 2 * group (+8 if c is odd): 16-byte chunk c of the row's
            // 128 bytes, stored at chunk c ^ (row % 8) by the 128-byte swizzle; row % 8 is the same for all
            // of this thread's rows, since the row step is a multiple of 8.
            constexpr int ROW_STEP = DECODER_THREADS / 4;
            static_assert(ROW_STEP % 8 == 0, "a decoder thread's rows share their swizzle phase");
            const int group = thread % 4, phase = (thread / 4) % 8;
            // Two rows per pass: both rows' loads are in flight before either is decoded.
            for (int row = thread / 4; row < token_count; row += 2 * ROW_STEP) {
                row_part parts[2] = {{make_uint2(0, 0), 0}, {make_uint2(0, 0), 0}};
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = row + h * ROW_STEP;
                    if (r < u.rows) {
                        const uint32_t token = u.m0 + r;  // unsigned: shifts, not signed divisions
                        parts[h].packed = *reinterpret_cast<const uint2 *>(buffers.tokens + r * ROW_PITCH +
                                                                           kb_in_stage * KBLOCK_BYTES + 8 * group);
                        parts[h].scale = buffers.token_scales[token / NVFP4_SF_ATOM_ROWS - first_rowblock]
                                                             [kb_in_stage][(token % 32) * 16 + (token % 128) / 32 * 4 + group];
                    }
                }
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int r = row + h * ROW_STEP;
                    if (r >= token_count) break;
                    uint32_t pairs[8];
                    decode_row_part(parts[h], pairs);
                    uint32_t *row_words = reinterpret_cast<uint32_t *>(decoded + r * KBLOCK) + group;
#pragma unroll
                    for (int c = 0; c < 8; c++) row_words[(c ^ phase) * 4] = pairs[c];
                }
            }
            fence_shared_for_async();
            __syncwarp();
            if (lane == 0) barrier_arrive(&shared.decoded_full[tile.index]);
            if (kb_in_stage == STAGE_KBLOCKS - 1 || kb == kblocks - 1) {
                if (lane == 0) barrier_arrive(&shared.stage_empty[stage.index]);
                stage_count++;
            }
        }
    }
}

// ---- Consumers (warpgroups 2, 3) ----------------------------------------------------------------------------

// One 64-K block's wgmma over a decoded token tile of TOKENS rows, between one fence and one commit. TOKENS
// is a template parameter so that no branch separates the fence, the wgmma and the commit: with one, the
// compiler closes the group with a dummy wgmma, and wait_group 1 then waits for this block's real ones.
template <int TOKENS>
__device__ __forceinline__ void block_mma(float (&acc)[MAX_TOKENS / 2], const uint32_t (&frag)[4][4],
                                          const __half *tile) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int ks = 0; ks < 4; ks++) wgmma_tokens<TOKENS>::run(acc, frag[ks], swizzled_tile_descriptor(tile + ks * 16));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

template <int CAPACITY>
__device__ void run_consumer(const grouped_params<CAPACITY> &params, shared_storage &shared, int consumer,
                             int thread) {
    const int warp = thread / 32, lane = thread % 32, quad_row = lane / 4, quad_lane = lane % 4;
    const int unit_row = consumer * CONSUMER_ROWS + warp * 16 + quad_row;  // this thread's weight rows: +0, +8
    uint8_t *staging = shared.epilogue[consumer];
    int stage_count = 0, block_count = 0;
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x) {
        const unit_coords u = locate_unit(params, unit);
        const nvfp4_group_entry &g = *u.group;
        // Warp-uniform by construction; the shuffles let the compiler see it, so that the wgmma inside the
        // branches on them stay asynchronous.
        const int kblocks = __shfl_sync(0xFFFFFFFFu, g.k / KBLOCK, 0);
        const int token_count = __shfl_sync(0xFFFFFFFFu, (u.rows + 7) / 8 * 8, 0);
        const int weight_rows = g.n - u.n0;

        // A fragments of the four k16 steps: {row, slots 2t}, {row + 8, 2t}, {row, 2t+8}, {row + 8, 2t+8}.
        auto load_fragments = [&](int kb, uint32_t (&frag)[4][4]) {
            const ring_position stage = ring_at(stage_count, STAGES);
            const int kb_in_stage = kb % STAGE_KBLOCKS;
            if (kb_in_stage == 0) barrier_wait(&shared.stage_full[stage.index], stage.parity);
            const stage_buffers &buffers = shared.stages[stage.index];
            uint32_t pairs[2][8];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = unit_row + 8 * h;
                row_part p;
                p.packed = *reinterpret_cast<const uint2 *>(buffers.weights + row * ROW_PITCH +
                                                            kb_in_stage * KBLOCK_BYTES + 8 * quad_lane);
                p.scale = row < weight_rows ? buffers.weight_scales[kb_in_stage][sf_atom_offset(row) + quad_lane] : 0;
                decode_row_part(p, pairs[h]);
            }
            if (kb_in_stage == STAGE_KBLOCKS - 1 || kb == kblocks - 1) {
                __syncwarp();
                if (lane == 0) barrier_arrive(&shared.stage_empty[stage.index]);
                stage_count++;
            }
#pragma unroll
            for (int ks = 0; ks < 4; ks++) {
                frag[ks][0] = pairs[0][2 * ks];
                frag[ks][1] = pairs[1][2 * ks];
                frag[ks][2] = pairs[0][2 * ks + 1];
                frag[ks][3] = pairs[1][2 * ks + 1];
            }
        };

        float acc[MAX_TOKENS / 2];
#pragma unroll
        for (int i = 0; i < MAX_TOKENS / 2; i++) acc[i] = 0.0f;
        uint32_t frag_a[4][4], frag_b[4][4], frag_c[4][4];  // named sets: register arrays need constant indices

        // Block kb's wgmma runs on frag while the next block's fragments are decoded into next_frag, which the
        // previous block's wgmma (finished by wait_group 1) no longer reads. The token count is a template
        // parameter of the loop (one instantiation per multiple of 8), so that nothing branches between a
        // block's wgmma.fence, its wgmma and its commit: with a branch there, the compiler closes the group with
        // a dummy wgmma, wait_group 1 then waits for this block's real ones, and nothing overlaps (measured).
        auto mainloop = [&](auto tokens) {
            constexpr int TOKENS = decltype(tokens)::value;
            auto step = [&](int kb, const uint32_t (&frag)[4][4], uint32_t (&next_frag)[4][4]) {
                const ring_position tile = ring_at(block_count, DECODED_TILES);
                barrier_wait(&shared.decoded_full[tile.index], tile.parity);
                block_mma<TOKENS>(acc, frag, shared.decoded[tile.index]);
                asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(WGMMA_IN_FLIGHT - 1) : "memory");
                if (kb >= WGMMA_IN_FLIGHT - 1 && lane == 0)
                    barrier_arrive(&shared.decoded_empty[ring_at(block_count - (WGMMA_IN_FLIGHT - 1), DECODED_TILES).index]);
                block_count++;
                if (kb + 1 < kblocks) load_fragments(kb + 1, next_frag);
            };
            load_fragments(0, frag_a);
            for (int kb = 0; kb < kblocks; kb += 3) {
                step(kb, frag_a, frag_b);
                if (kb + 1 < kblocks) step(kb + 1, frag_b, frag_c);
                if (kb + 2 < kblocks) step(kb + 2, frag_c, frag_a);
            }
        };
#define TOKENS_CASE(n) \
    case n / 8: mainloop(std::integral_constant<int, n>{}); break;
        static_assert(MAX_TOKENS == 192, "one case per multiple of 8 up to MAX_TOKENS");
        switch (token_count / 8) {
            TOKENS_CASE(8) TOKENS_CASE(16) TOKENS_CASE(24) TOKENS_CASE(32) TOKENS_CASE(40) TOKENS_CASE(48)
            TOKENS_CASE(56) TOKENS_CASE(64) TOKENS_CASE(72) TOKENS_CASE(80) TOKENS_CASE(88) TOKENS_CASE(96)
            TOKENS_CASE(104) TOKENS_CASE(112) TOKENS_CASE(120) TOKENS_CASE(128) TOKENS_CASE(136) TOKENS_CASE(144)
            TOKENS_CASE(152) TOKENS_CASE(160) TOKENS_CASE(168) TOKENS_CASE(176) TOKENS_CASE(184) TOKENS_CASE(192)
            default: break;
        }
#undef TOKENS_CASE
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        for (int b = min(kblocks, WGMMA_IN_FLIGHT - 1); b > 0 && lane == 0; b--)
            barrier_arrive(&shared.decoded_empty[ring_at(block_count - b, DECODED_TILES).index]);

        // Epilogue, 64 tokens at a time. acc[32j + 4i + e] is weight row (quad_row + 8 * (e / 2)) of this warp and
        // token 64j + 8i + 2 * quad_lane + e % 2; staged as [token][weight row] so that a c row is contiguous.
        uint8_t *c = g.c + u.slice * g.c_batch_stride;
        const int col0 = u.n0 + consumer * CONSUMER_ROWS;
        const bool wide_stores = g.c_row_stride % 16 == 0 && reinterpret_cast<uintptr_t>(c) % 16 == 0;
#pragma unroll
        for (int j = 0; j < CHUNKS; j++) {
            const int tokens = min(u.rows - j * CHUNK, CHUNK);
            if (tokens <= 0) break;
#pragma unroll
            for (int i = 0; i < CHUNK / 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int token = 8 * i + 2 * quad_lane + e % 2, col = warp * 16 + quad_row + 8 * (e / 2);
                    *reinterpret_cast<__half *>(staging + token * EPILOGUE_PITCH + col * 2) =
                        __float2half_rn(acc[j * CHUNK / 2 + 4 * i + e] * ACCUMULATOR_SCALE);
                }
            sync_consumer(consumer);
            for (int i = thread; i < tokens * 8; i += 128) {
                const int token = i / 8, col = col0 + (i % 8) * 8;
                const uint4 v = *reinterpret_cast<const uint4 *>(staging + token * EPILOGUE_PITCH + (i % 8) * 16);
                __half *out = reinterpret_cast<__half *>(c + (int64_t)(u.m0 + j * CHUNK + token) * g.c_row_stride) + col;
                if (wide_stores && col + 8 <= g.n) {
                    *reinterpret_cast<uint4 *>(out) = v;
                } else {
                    const __half *h = reinterpret_cast<const __half *>(&v);
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        if (col + e < g.n) out[e] = h[e];
                }
            }
            sync_consumer(consumer);
        }
    }
}

template <int CAPACITY>
__global__ void __launch_bounds__(THREADS, 1) hopper_gemm_kernel(const __grid_constant__ grouped_params<CAPACITY> params) {
    // Aligned by an offset from the __shared__ array itself (not through an integer), so the compiler keeps
    // every access in the shared window (LDS/STS instead of generic loads and stores).
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    shared_storage &shared = *reinterpret_cast<shared_storage *>(dynamic_shared + (misalignment ? 1024 - misalignment : 0));
    const int tid = threadIdx.x;

    if (tid == 0) {
        for (int s = 0; s < STAGES; s++) {
            barrier_init(&shared.stage_full[s], COPIER_THREADS);
            barrier_init(&shared.stage_empty[s], CONSUMER_WARPS + DECODER_WARPS);
        }
        for (int t = 0; t < DECODED_TILES; t++) {
            barrier_init(&shared.decoded_full[t], DECODER_WARPS);
            barrier_init(&shared.decoded_empty[t], CONSUMER_WARPS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    // Roles by warpgroup and warp (warp-uniform, which the shuffles make visible to the compiler).
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, tid / 128, 0), warp = __shfl_sync(0xFFFFFFFFu, tid / 32, 0);
    if (warpgroup < PRODUCERS) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(PRODUCER_REGISTERS));
        if (warp < COPIER_WARPS) run_copier(params, shared, tid);
        else run_token_decoder(params, shared, tid - 32 * COPIER_WARPS);
    } else {
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(CONSUMER_REGISTERS));
        run_consumer(params, shared, warpgroup - PRODUCERS, tid % 128);
    }
}

template <int CAPACITY>
struct hopper_family {
    static void launch(const grouped_params<CAPACITY> &params, const nvfp4_launch_shape &shape, cudaStream_t stream) {
        // The shared-memory opt-in is a per-device attribute of the function: set once per device.
        static bool configured[NVFP4_MAX_DEVICES];
        if (!configured[shape.device]) {
            if (cudaFuncSetAttribute(hopper_gemm_kernel<CAPACITY>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)SHARED_BYTES) != cudaSuccess)
                return;  // the error stays pending for launch_grouped's cudaGetLastError
            configured[shape.device] = true;
        }
        hopper_gemm_kernel<CAPACITY><<<shape.grid, THREADS, SHARED_BYTES, stream>>>(params);
    }
};

}  // namespace

extern "C" int nvfp4_hopper_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                   int32_t num_entries, const nvfp4_launch_shape *shape, void *stream) {
    return launch_grouped<hopper_family>(host_entries, device_table, num_entries, shape, stream);
}
