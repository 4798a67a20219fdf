// hopper_streamk.cu: the Hopper (sm_90a) NVFP4 grouped GEMM, c = (a*sfa) @ (b*sfb)^T, in two launches over the
// schedule of hopper_schedule.h (units of 128 weight rows x one token chunk of <= 128 rows, split stream-K).
//
// 1. token_prepass_kernel decodes every group's tokens (rows of a) once per call into an fp16 scratch buffer:
//    a * sfa * 2^-7, exact, each 64-K block in the K order of weight_k_of_position and laid out so that one
//    linear bulk copy of a chunk's k-block (width x 128 bytes) lands as wgmma's 128-byte-swizzled B tile. One
//    thread per scratch row of 128 bytes (a token row's 64-K block); every block first builds the schedule's
//    prefix table in shared memory from the sizes. Block 0 also publishes the problems and the prefix table for
//    the main kernel and clears the stream-K flags.
// 2. streamk_gemm_kernel, persistent (one CTA per SM), walks its CTA's pieces (hopper_walk_next). Per CTA:
//     - warp 0, the copier: lane 0 walks the CTA's pieces (hopper_walk_next) and hands each to the consumers
//       through a small ring of descriptors; per 64-K block of a piece, lane 0 bulk-copies the chunk's decoded
//       token block (evict-last in L2: every weight tile of the group reads it again) and the weights' 512-byte
//       scale atom, and the warp's loads (cp.async) bring the 128 weight rows' 32 packed bytes each
//       (evict-first: streamed once), into one of STAGES stage buffers; the stage's `full` mbarrier completes
//       when every byte has landed; a stage is refilled once `empty` says all eight consumer warps are done.
//     - warps 1-3 leave at once; warpgroup 0 hands registers to the consumers (setmaxnreg).
//     - warpgroups 1 and 2, the consumers, 64 weight rows each: per k16 step they issue wgmma m64nNk16 (N = the
//       chunk's width, its rows rounded up to 8) with A from registers, on fragments decoded during the step
//       before, then decode the next step's fragments from the packed bytes while that wgmma runs
//       (weight_fragments.cuh). A piece runs in a loop compiled for its N (wgmma_rs.cuh), 16 widths (8 .. 128):
//       everything that touches the accumulators sits in that one instantiation, which keeps the wgmma
//       asynchronous; with more than 16 widths in one kernel ptxas serialises every wgmma (C7512).
//    A piece that covers its unit's whole K writes c. Otherwise each piece but the unit's first leaves its fp32
//    accumulators in its CTA's workspace slot and raises its flag; the first piece's CTA (which reaches it last
//    in its range) adds those partials, then writes c.
#include <cuda_runtime.h>
#include <stdint.h>

#include "grouped_launch.cuh"
#include "hopper_schedule.h"
#include "launchers.h"
#include "nvfp4.cuh"
#include "sm90_ptx.cuh"
#include "weight_fragments.cuh"
#include "wgmma_rs.cuh"

namespace {

constexpr int KBLOCK_BYTES = HOPPER_KBLOCK_K / 2;  // packed bytes per row and k-block
constexpr int TOKEN_ROW_BYTES = HOPPER_SCRATCH_ROW_BYTES;  // a decoded token row's k-block: 64 fp16
constexpr int WEIGHT_ROWS = HOPPER_WEIGHT_ROWS;
constexpr int MAX_WIDTH = HOPPER_CHUNK_MAX_ROWS;      // 128: see the width cases in run_consumer
constexpr int CONSUMER_ROWS = 64;                  // per consumer warpgroup: wgmma's M
constexpr int CONSUMERS = 2;                       // warpgroups
constexpr int CONSUMER_WARPS = 4 * CONSUMERS;
constexpr int CONSUMER_THREADS = 128 * CONSUMERS;
constexpr int THREADS = 128 + CONSUMER_THREADS;
constexpr int STAGES = 8;
constexpr int PIECE_SLOTS = 4;                    // pieces the copier may run ahead of the consumers
constexpr int PRODUCER_REGISTERS = 40;   // setmaxnreg: 128 x 40 + 256 x 232 = 64512 of the 65536 the launch holds
constexpr int CONSUMER_REGISTERS = 232;  // (the copier spills a little of its per-piece schedule state: off the hot loop)
constexpr int EPILOGUE_TOKENS = 64;      // tokens per epilogue pass
constexpr int EPILOGUE_PITCH = CONSUMER_ROWS * 2 + 16;  // bytes per staged token row: 64 fp16 + 16 against conflicts
constexpr int PREPASS_THREADS = 256;
constexpr int MAX_PROBLEMS = NVFP4_STREAMK_MAX_GROUPS;  // groups the pre-pass's shared prefix table holds
constexpr float ACCUMULATOR_SCALE_2 = 16384.0f;  // products of two operands carrying 2^-7 each
static_assert(128 * PRODUCER_REGISTERS + CONSUMER_THREADS * CONSUMER_REGISTERS <= 65536,
              "setmaxnreg.inc waits forever for registers the launch does not hold");
static_assert(CONSUMERS * CONSUMER_ROWS == WEIGHT_ROWS, "the consumers cover the unit's weight rows");
static_assert(FRAGMENT_SCALE_LOG2 == -7, "the epilogue removes 2^-14 from every product");

struct stage_buffers {
    uint8_t tokens[MAX_WIDTH * TOKEN_ROW_BYTES];  // first: 1024-byte aligned, as the swizzle's 8-row atoms need
    uint8_t weights[WEIGHT_ROWS * KBLOCK_BYTES];  // row r at 32r: a warp's 8 rows x 32 bytes cover every bank twice
    uint8_t weight_scales[NVFP4_SF_ATOM_BYTES];
    uint8_t unused[512];  // to a multiple of 1024 bytes, for the next stage's token tile
};

// One piece as the copier hands it to the consumers (width 0: the CTA's range is done). The copier walks the
// schedule and the consumers only read these, so no 64-bit schedule state sits beside their accumulators.
struct piece_desc {
    int32_t problem, slice, tile, chunk;
    int32_t kb_begin, kb_end, rows, width;
    int32_t is_first, is_complete;
    int32_t q_begin, q_end;  // a split unit's first piece: the CTAs that may hold its partial pieces
};

struct shared_storage {
    stage_buffers stages[STAGES];
    uint8_t epilogue[CONSUMERS][EPILOGUE_TOKENS * EPILOGUE_PITCH];
    piece_desc pieces[PIECE_SLOTS];
    uint64_t full[STAGES], empty[STAGES];
    uint64_t piece_full[PIECE_SLOTS], piece_empty[PIECE_SLOTS];
};
static_assert(sizeof(stage_buffers) % 1024 == 0, "every stage's token tile stays 1024-byte aligned");
constexpr size_t SHARED_BYTES = sizeof(shared_storage) + 1024;  // + room to align the base to 1024

// Floats of one CTA's workspace slot: every consumer thread's accumulators of the widest chunk.
constexpr int PARTIAL_FLOATS = CONSUMER_THREADS * (MAX_WIDTH / 2);

// Both kernels' parameters: the group table (by value, or in device memory) and the call's workspace. One
// capacity only: every width's loop is compiled once per kernel, and the kernel holds 32 of them.
struct streamk_params {
    const nvfp4_group_entry *device_table;  // non-null: the table lives in device memory
    int32_t num_entries;
    int32_t ctas;                           // the main kernel's grid: one CTA per SM
    uint8_t *scratch;                       // the pre-pass's decoded tokens (hopper_scratch_offset's layout)
    float *partials;                        // [ctas][PARTIAL_FLOATS]: one slot per CTA
    int32_t *flags;                         // [ctas]: 1 once the CTA's partial is in its slot
    hopper_problem *problems;               // [num_entries], written by the pre-pass
    hopper_prefix *prefix;                  // [num_entries + 1], written by the pre-pass
    nvfp4_group_entry entries[LARGE_TABLE];
};
static_assert(sizeof(streamk_params) <= 4096, "the by-value table must fit the 4 KB parameter space");

__device__ __forceinline__ const nvfp4_group_entry &entry_of(const streamk_params &params, int problem) {
    return params.device_table ? params.device_table[problem] : params.entries[problem];
}

// ---- Token pre-pass ---------------------------------------------------------------------------------------------

// One token row's 64-K block (32 packed bytes, 4 scale bytes) as 128 bytes of fp16 in position order: position
// 16s + 2t + e holds the value weight_k_of_position puts there, i.e. the same words, nibbles and pairs that
// weight_fragment decodes for quad lane t and step s. Chunk j of the result holds positions 8j .. 8j + 7.
__device__ __forceinline__ void decode_token_block(const uint4 (&packed)[2], uint32_t scale_bytes, uint4 (&chunks)[8]) {
    __half2 scales[4];  // scale group t (byte t) times 2^7, in both halves
    e4m3x2_to_row_scales(scale_bytes & 0xFFFFu, scales[0], scales[1]);
    e4m3x2_to_row_scales(scale_bytes >> 16, scales[2], scales[3]);
    const uint32_t words[8] = {packed[0].x, packed[0].y, packed[0].z, packed[0].w,
                               packed[1].x, packed[1].y, packed[1].z, packed[1].w};
    uint32_t low[4][4], high[4][4];  // [step][t]: slots 2t, 2t+1 and 2t+8, 2t+9 of step s
#pragma unroll
    for (int t = 0; t < 4; t++)
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint32_t word = words[2 * t + s / 2];  // group t = bytes 8t .. 8t + 7
            nibble_bytes_to_pairs(s % 2 == 0 ? odd_nibble_bytes(word) : even_nibble_bytes(word), scales[t], low[s][t],
                                  high[s][t]);
        }
#pragma unroll
    for (int s = 0; s < 4; s++) {
        chunks[2 * s] = make_uint4(low[s][0], low[s][1], low[s][2], low[s][3]);
        chunks[2 * s + 1] = make_uint4(high[s][0], high[s][1], high[s][2], high[s][3]);
    }
}

// Fills the prefix table of the first `count` problems in shared memory: each thread sums some problems, then one
// warp scans. The same integer sums as hopper_schedule_init, so every block and the host agree.
__device__ __forceinline__ void build_prefix(const hopper_problem *problems, hopper_prefix *prefix, int count) {
    for (int p = threadIdx.x; p < count; p += blockDim.x) prefix[p + 1] = hopper_problem_totals(&problems[p]);
    __syncthreads();
    if (threadIdx.x == 0) {
        hopper_prefix sum = {0, 0, 0};
        prefix[0] = sum;
        for (int p = 0; p < count; p++) {
            sum.cost += prefix[p + 1].cost;
            sum.units += prefix[p + 1].units;
            sum.scratch_bytes += prefix[p + 1].scratch_bytes;
            prefix[p + 1] = sum;
        }
    }
    __syncthreads();
}

__global__ void __launch_bounds__(PREPASS_THREADS)
    token_prepass_kernel(const __grid_constant__ streamk_params params) {
    __shared__ hopper_problem problems[MAX_PROBLEMS];
    __shared__ hopper_prefix prefix[MAX_PROBLEMS + 1];
    const int count = params.num_entries;
    for (int p = threadIdx.x; p < count; p += blockDim.x) {
        const nvfp4_group_entry &g = entry_of(params, p);
        problems[p] = hopper_problem{g.m, g.n, g.k, g.l};
    }
    __syncthreads();
    build_prefix(problems, prefix, count);
    if (blockIdx.x == 0) {
        for (int p = threadIdx.x; p < count; p += blockDim.x) params.problems[p] = problems[p];
        for (int p = threadIdx.x; p <= count; p += blockDim.x) params.prefix[p] = prefix[p];
        for (int q = threadIdx.x; q < params.ctas; q += blockDim.x) params.flags[q] = 0;
    }
    const hopper_schedule s = hopper_schedule_attach(problems, prefix, count, params.ctas);
    const int64_t rows = s.scratch_bytes / TOKEN_ROW_BYTES;
    for (int64_t item = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; item < rows; item += (int64_t)gridDim.x * blockDim.x) {
        const int64_t offset = item * TOKEN_ROW_BYTES;
        // The problem, slice, chunk, k-block and row of this scratch row (hopper_scratch_offset's layout).
        int lo = 0, hi = count - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (prefix[mid].scratch_bytes <= offset) lo = mid;
            else hi = mid - 1;
        }
        const hopper_shape sh = hopper_problem_shape(&problems[lo]);
        int64_t local = offset - prefix[lo].scratch_bytes;
        const int slice = (int)(local / sh.slice_scratch);
        local -= slice * sh.slice_scratch;
        const int64_t chunk_bytes = (int64_t)sh.base * sh.kblocks * TOKEN_ROW_BYTES;
        const int chunk = local / chunk_bytes < sh.chunks - 1 ? (int)(local / chunk_bytes) : sh.chunks - 1;
        local -= chunk * chunk_bytes;
        const int width = chunk == sh.chunks - 1 ? sh.last_width : sh.base;
        const int kb = (int)(local / ((int64_t)width * TOKEN_ROW_BYTES));
        const int row = (int)(local / TOKEN_ROW_BYTES - (int64_t)kb * width);
        const nvfp4_group_entry &g = entry_of(params, lo);
        uint4 chunks[8];
        if (row < hopper_chunk_rows(g.m, chunk)) {
            const int token = hopper_chunk_first_row(g.m, chunk) + row;
            const uint8_t *a = g.a + slice * g.a_batch_stride + (int64_t)token * g.a_row_stride + kb * KBLOCK_BYTES;
            const uint4 packed[2] = {__ldg(reinterpret_cast<const uint4 *>(a)), __ldg(reinterpret_cast<const uint4 *>(a) + 1)};
            const uint32_t scale_bytes = __ldg(reinterpret_cast<const uint32_t *>(
                g.sfa + slice * g.sfa_batch_stride + sf_offset(token, kb, g.sfa_rowblock_stride, g.sfa_kblock_stride)));
            decode_token_block(packed, scale_bytes, chunks);
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) chunks[j] = make_uint4(0, 0, 0, 0);  // rows past the chunk's tokens
        }
        uint8_t *out = params.scratch + offset;
#pragma unroll
        for (int j = 0; j < 8; j++) *reinterpret_cast<uint4 *>(out + ((j ^ (row % 8)) * 16)) = chunks[j];
    }
}

// ---- Main kernel: the copier ------------------------------------------------------------------------------------

struct ring_position {
    int index;
    uint32_t parity;
};

__device__ __forceinline__ ring_position ring_at(int count, int size = STAGES) {
    return ring_position{count % size, static_cast<uint32_t>((count / size) & 1)};
}

__device__ __forceinline__ void store_release(int32_t *flag, int32_t value) {
    asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(flag), "r"(value) : "memory");
}

// Flag values of a CTA's workspace slot (the pre-pass clears them to 0 each call).
constexpr int32_t SLOT_PARTIAL = 1;  // the CTA's partial piece is in its slot
constexpr int32_t SLOT_EMPTY = 2;    // the CTA runs nothing: a finalizer whose span covers it skips it

__device__ __forceinline__ void publish_piece(shared_storage &shared, int index, const piece_desc &desc) {
    const ring_position slot = ring_at(index, PIECE_SLOTS);
    if (index >= PIECE_SLOTS) barrier_wait(&shared.piece_empty[slot.index], slot.parity ^ 1);
    shared.pieces[slot.index] = desc;
    barrier_arrive(&shared.piece_full[slot.index]);  // release: the consumers' wait orders their reads after it
}

// Lane 0 walks the schedule and publishes each piece; the warp issues its copies.
__device__ __forceinline__ void run_copier(const streamk_params &params, const hopper_schedule &s, shared_storage &shared,
                                           int lane) {
    const uint64_t keep = l2_policy_evict_last(), stream = l2_policy_evict_first();
    hopper_walk walk = hopper_cta_walk(&s, blockIdx.x);
    if (lane == 0 && hopper_cta_is_empty(&s, blockIdx.x)) store_release(&params.flags[blockIdx.x], SLOT_EMPTY);
    hopper_piece piece;
    int count = 0, pieces = 0;
    while (hopper_walk_next(&s, &walk, &piece)) {
        const hopper_unit &u = piece.unit;
        if (lane == 0) {
            piece_desc desc = {u.problem, u.slice, u.tile, u.chunk, piece.kb_begin, piece.kb_end, piece.rows,
                               piece.width, piece.is_first, piece.is_complete, 0, 0};
            if (piece.is_first && !piece.is_complete) hopper_unit_partial_ctas(&s, u, &desc.q_begin, &desc.q_end);
            publish_piece(shared, pieces, desc);
        }
        pieces++;
        const nvfp4_group_entry &g = entry_of(params, u.problem);
        const int n0 = u.tile * WEIGHT_ROWS, weight_rows = min(WEIGHT_ROWS, g.n - n0);
        const uint8_t *tokens = params.scratch + hopper_scratch_offset(&s, u.problem, u.slice, u.chunk);
        const uint8_t *b = g.b + u.slice * g.b_batch_stride + (int64_t)n0 * g.b_row_stride;
        const uint8_t *sfb = g.sfb + u.slice * g.sfb_batch_stride + (int64_t)(n0 / NVFP4_SF_ATOM_ROWS) * g.sfb_rowblock_stride;
        const uint32_t token_bytes = piece.width * TOKEN_ROW_BYTES;
        const uint32_t bytes = token_bytes + NVFP4_SF_ATOM_BYTES;  // the bulk copies; the weight loads arrive
        for (int kb = piece.kb_begin; kb < piece.kb_end; kb++, count++) {
            const ring_position stage = ring_at(count);
            if (count >= STAGES) barrier_wait(&shared.empty[stage.index], stage.parity ^ 1);
            stage_buffers &buffers = shared.stages[stage.index];
            if (lane == 0) {
                barrier_arrive_expect_bytes(&shared.full[stage.index], bytes);
                bulk_copy_hinted(buffers.tokens, tokens + (int64_t)kb * token_bytes, token_bytes,
                                 &shared.full[stage.index], keep);
                bulk_copy_hinted(buffers.weight_scales, sfb + (int64_t)kb * g.sfb_kblock_stride, NVFP4_SF_ATOM_BYTES,
                                 &shared.full[stage.index], stream);
            }
            // The weight rows' 32 bytes each by the warp's loads (two 16-byte halves a row): as bulk copies, 128
            // requests of 32 bytes a k-block kept the bulk copy unit ~80 clocks a request behind.
            for (int i = lane; i < 2 * weight_rows; i += 32)
                copy16_async(buffers.weights + i * 16, b + (int64_t)(i / 2) * g.b_row_stride + kb * KBLOCK_BYTES + (i % 2) * 16,
                             stream);
            barrier_arrive_on_copies(&shared.full[stage.index]);
        }
    }
    if (lane == 0) {
        const piece_desc done = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        publish_piece(shared, pieces, done);
    }
}

// ---- Main kernel: the consumers ----------------------------------------------------------------------------------

// Where a consumer thread is in the stage ring, carried across pieces.
struct consumer_state {
    int count;
};

// The packed words of the thread's scale group in rows r0 and r0 + 8 of a stage, and their two scales (0 for
// rows past the end of b, which turns whatever the stage holds there into zeros: a decoded e2m1 is never NaN).
__device__ __forceinline__ void load_weights(const stage_buffers &buffers, int r0, int t, int weight_rows,
                                             uint32_t (&words)[2][2], __half2 &scale_r0, __half2 &scale_r1) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint2 v = *reinterpret_cast<const uint2 *>(buffers.weights + (r0 + 8 * h) * KBLOCK_BYTES + 8 * t);
        words[h][0] = v.x;
        words[h][1] = v.y;
    }
    const uint32_t s0 = r0 < weight_rows ? buffers.weight_scales[sf_atom_offset(r0) + t] : 0u;
    const uint32_t s1 = r0 + 8 < weight_rows ? buffers.weight_scales[sf_atom_offset(r0 + 8) + t] : 0u;
    e4m3x2_to_row_scales(s0 | (s1 << 8), scale_r0, scale_r1);
}

template <int N>
__device__ __forceinline__ void mma_step(float (&acc)[N / 2], const uint32_t (&frag)[4], const uint8_t *tile, int step) {
    wgmma_fence();
    wgmma_rs<N>::mma(acc, frag, swizzled_tile_descriptor(tile + step * 32));
    wgmma_commit();
}

__device__ __forceinline__ void sync_consumers() { asm volatile("bar.sync 1, %0;\n" ::"n"(CONSUMER_THREADS) : "memory"); }

__device__ __forceinline__ void sync_consumer(int consumer) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(2 + consumer) : "memory");
}

__device__ __forceinline__ void release_stage(shared_storage &shared, int count, int lane) {
    __syncwarp();
    if (lane == 0) barrier_arrive(&shared.empty[ring_at(count).index]);
}

__device__ __forceinline__ int32_t load_acquire(const int32_t *flag) {
    int32_t value;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(value) : "l"(flag) : "memory");
    return value;
}

// One piece for a consumer warpgroup: its 64 weight rows of the unit by N token columns, over the piece's k-blocks.
template <int N>
__device__ __forceinline__ void consumer_piece(const streamk_params &params, const piece_desc &piece,
                                               shared_storage &shared, int consumer, int thread, consumer_state &state) {
    const int warp = thread / 32, lane = thread % 32, t = lane % 4;
    const int r0 = consumer * CONSUMER_ROWS + warp * 16 + lane / 4;  // unit rows r0 and r0 + 8
    const nvfp4_group_entry &g = entry_of(params, piece.problem);
    const int n0 = piece.tile * WEIGHT_ROWS, weight_rows = min(WEIGHT_ROWS, g.n - n0);
    const int kblocks = piece.kb_end - piece.kb_begin;

    float acc[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; i++) acc[i] = 0.0f;
    uint32_t words[2][2], next_words[2][2], frag[2][4];
    __half2 s0, s1, next_s0, next_s1;

    ring_position stage = ring_at(state.count);
    barrier_wait(&shared.full[stage.index], stage.parity);
    load_weights(shared.stages[stage.index], r0, t, weight_rows, words, s0, s1);
    weight_fragment(0, words, s0, s1, frag[0]);
    for (int kb = 0; kb < kblocks; kb++) {
        const uint8_t *tile = shared.stages[stage.index].tokens;
        const bool more = kb + 1 < kblocks;
        const ring_position next = ring_at(state.count + 1);
        if (more) {
            barrier_wait(&shared.full[next.index], next.parity);
            load_weights(shared.stages[next.index], r0, t, weight_rows, next_words, next_s0, next_s1);
        }
        // Issue step s on one fragment set; once step s - 1 has finished, decode step s + 1 into its set.
        mma_step<N>(acc, frag[0], tile, 0);
        wgmma_wait<1>();
        if (kb > 0) release_stage(shared, state.count - 1, lane);  // its last wgmma has finished
        weight_fragment(1, words, s0, s1, frag[1]);
        mma_step<N>(acc, frag[1], tile, 1);
        wgmma_wait<1>();
        weight_fragment(2, words, s0, s1, frag[0]);
        mma_step<N>(acc, frag[0], tile, 2);
        wgmma_wait<1>();
        weight_fragment(3, words, s0, s1, frag[1]);
        mma_step<N>(acc, frag[1], tile, 3);
        wgmma_wait<1>();
        if (more) {
            weight_fragment(0, next_words, next_s0, next_s1, frag[0]);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                words[h][0] = next_words[h][0];
                words[h][1] = next_words[h][1];
            }
            s0 = next_s0;
            s1 = next_s1;
        }
        state.count++;
        stage = next;
    }
    wgmma_wait<0>();
    release_stage(shared, state.count - 1, lane);

    // Accumulator d[4i + e]: unit row r0 + 8 * (e / 2), token 8i + 2t + e % 2 (wgmma_rs.cuh). A slot stores them
    // register-major ([i][consumer thread]), so its writer and its reader, threads of the same role, both move
    // whole 128-byte lines.
    const int consumer_thread = consumer * 128 + thread;
    if (!piece.is_first) {
        float *slot = params.partials + (int64_t)blockIdx.x * PARTIAL_FLOATS;
#pragma unroll
        for (int i = 0; i < N / 2; i++) __stcg(slot + i * CONSUMER_THREADS + consumer_thread, acc[i]);
        sync_consumers();
        if (consumer_thread == 0) {
            __threadfence();
            store_release(&params.flags[blockIdx.x], SLOT_PARTIAL);
        }
        return;
    }
    if (!piece.is_complete) {
        for (int q = piece.q_begin; q < piece.q_end; q++) {
            // Every CTA of the span raises its flag: with its partial, or as one that runs nothing. Each thread
            // acquires the flag itself, which orders its own reads of the slot after the writer's release.
            int32_t slot_state;
            while ((slot_state = load_acquire(&params.flags[q])) == 0) __nanosleep(32);
            if (slot_state != SLOT_PARTIAL) continue;
            const float *slot = params.partials + (int64_t)q * PARTIAL_FLOATS;
#pragma unroll
            for (int i = 0; i < N / 2; i++) acc[i] += __ldcg(slot + i * CONSUMER_THREADS + consumer_thread);
        }
    }

    // Write c, EPILOGUE_TOKENS tokens at a time: staged as [token][weight row] so that a c row is contiguous.
    uint8_t *staging = shared.epilogue[consumer];
    uint8_t *c = g.c + piece.slice * g.c_batch_stride;
    const int token0 = hopper_chunk_first_row(g.m, piece.chunk);
    const int col0 = n0 + consumer * CONSUMER_ROWS;
    const bool wide_stores = g.c_row_stride % 16 == 0 && reinterpret_cast<uintptr_t>(c) % 16 == 0;
#pragma unroll
    for (int j = 0; j < (N + EPILOGUE_TOKENS - 1) / EPILOGUE_TOKENS; j++) {
        const int tokens = min(piece.rows - j * EPILOGUE_TOKENS, EPILOGUE_TOKENS);
        if (tokens <= 0) break;
#pragma unroll
        for (int i = 0; i < EPILOGUE_TOKENS / 8 && 8 * (EPILOGUE_TOKENS / 8 * j + i) < N; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int token = 8 * i + 2 * t + e % 2, col = warp * 16 + lane / 4 + 8 * (e / 2);
                *reinterpret_cast<__half *>(staging + token * EPILOGUE_PITCH + col * 2) =
                    __float2half_rn(acc[j * EPILOGUE_TOKENS / 2 + 4 * i + e] * ACCUMULATOR_SCALE_2);
            }
        sync_consumer(consumer);
        for (int i = thread; i < tokens * 8; i += 128) {
            const int token = i / 8, col = col0 + (i % 8) * 8;
            const uint4 v = *reinterpret_cast<const uint4 *>(staging + token * EPILOGUE_PITCH + (i % 8) * 16);
            __half *out = reinterpret_cast<__half *>(c + (int64_t)(token0 + j * EPILOGUE_TOKENS + token) * g.c_row_stride) + col;
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

// Widths 8 .. 128 in steps of 8: one loop compiled per width.
#define NVFP4_WIDTH_CASE(N)                                                                      \
    case N:                                                                                      \
        consumer_piece<N>(params, piece, shared, consumer, thread, state);          \
        break;

__device__ __forceinline__ void run_consumer(const streamk_params &params, shared_storage &shared, int consumer,
                                             int thread) {
    consumer_state state = {0};
    for (int index = 0;; index++) {
        const ring_position slot = ring_at(index, PIECE_SLOTS);
        barrier_wait(&shared.piece_full[slot.index], slot.parity);
        const piece_desc piece = shared.pieces[slot.index];
        __syncwarp();
        if (thread % 32 == 0) barrier_arrive(&shared.piece_empty[slot.index]);
        // Warp-uniform by construction; the shuffle lets the compiler see it, so that the wgmma inside each case
        // stay asynchronous.
        const int width = __shfl_sync(0xFFFFFFFFu, piece.width, 0);
        if (width == 0) return;
        switch (width) {
            NVFP4_WIDTH_CASE(8) NVFP4_WIDTH_CASE(16) NVFP4_WIDTH_CASE(24) NVFP4_WIDTH_CASE(32)
            NVFP4_WIDTH_CASE(40) NVFP4_WIDTH_CASE(48) NVFP4_WIDTH_CASE(56) NVFP4_WIDTH_CASE(64)
            NVFP4_WIDTH_CASE(72) NVFP4_WIDTH_CASE(80) NVFP4_WIDTH_CASE(88) NVFP4_WIDTH_CASE(96)
            NVFP4_WIDTH_CASE(104) NVFP4_WIDTH_CASE(112) NVFP4_WIDTH_CASE(120) NVFP4_WIDTH_CASE(128)
        }
    }
}
#undef NVFP4_WIDTH_CASE

__global__ void __launch_bounds__(THREADS, 1) streamk_gemm_kernel(const __grid_constant__ streamk_params params) {
    // Aligned by an offset from the __shared__ array itself (not through an integer), so the compiler keeps
    // every access in the shared window.
    extern __shared__ uint8_t dynamic_shared[];
    const uint32_t misalignment = shared_address(dynamic_shared) % 1024;
    shared_storage &shared = *reinterpret_cast<shared_storage *>(dynamic_shared + (misalignment ? 1024 - misalignment : 0));
    const int tid = threadIdx.x;
    if (tid == 0) {
        for (int i = 0; i < STAGES; i++) {
            barrier_init(&shared.full[i], 1 + 32);  // the copier's expect_tx arrival, then each lane's loads
            barrier_init(&shared.empty[i], CONSUMER_WARPS);
        }
        for (int i = 0; i < PIECE_SLOTS; i++) {
            barrier_init(&shared.piece_full[i], 1);
            barrier_init(&shared.piece_empty[i], CONSUMER_WARPS);
        }
        fence_barrier_init();
    }
    __syncthreads();
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, tid / 128, 0);
    if (warpgroup == 0) {
        setmaxnreg_dec<PRODUCER_REGISTERS>();
        if (tid < 32) {
            const hopper_schedule s = hopper_schedule_attach(params.problems, params.prefix, params.num_entries, gridDim.x);
            run_copier(params, s, shared, tid);
        }
    } else {
        setmaxnreg_inc<CONSUMER_REGISTERS>();
        run_consumer(params, shared, warpgroup - 1, tid % 128);
    }
}

}  // namespace

// ---- Launch -----------------------------------------------------------------------------------------------------

namespace {

constexpr int PREPASS_BLOCKS_PER_SM = 8;

// The call's workspace, one stream-ordered allocation: the scratch first (1024-byte aligned for the swizzle
// atoms its copies land as), then the partial slots, the flags, the problems and the prefix table.
struct workspace_layout {
    size_t partials, flags, problems, prefix, bytes;
};

workspace_layout layout_for(int64_t scratch_bytes, int ctas, int entries) {
    auto align = [](size_t v) { return (v + 1023) / 1024 * 1024; };
    workspace_layout w;
    w.partials = align((size_t)scratch_bytes);
    w.flags = align(w.partials + (size_t)ctas * PARTIAL_FLOATS * sizeof(float));
    w.problems = align(w.flags + (size_t)ctas * sizeof(int32_t));
    w.prefix = align(w.problems + (size_t)entries * sizeof(hopper_problem));
    w.bytes = w.prefix + (size_t)(entries + 1) * sizeof(hopper_prefix);
    return w;
}

// A memory pool per device that keeps what it has held (release threshold: never), so that after the first calls
// a stream-ordered allocation of the workspace costs no driver allocation; created on first use.
cudaError_t workspace_pool(int device, cudaMemPool_t *pool) {
    static cudaMemPool_t pools[NVFP4_MAX_DEVICES];
    if (!pools[device]) {
        cudaMemPoolProps props = {};
        props.allocType = cudaMemAllocationTypePinned;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = device;
        cudaMemPool_t created;
        cudaError_t failed = cudaMemPoolCreate(&created, &props);
        if (failed != cudaSuccess) return failed;
        uint64_t keep_everything = UINT64_MAX;
        failed = cudaMemPoolSetAttribute(created, cudaMemPoolAttrReleaseThreshold, &keep_everything);
        if (failed != cudaSuccess) return failed;
        pools[device] = created;
    }
    *pool = pools[device];
    return cudaSuccess;
}

cudaError_t launch_streamk(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                           int32_t num_entries, const nvfp4_launch_shape &shape, cudaStream_t stream) {
    static bool configured[NVFP4_MAX_DEVICES];
    static CUfunction prepass_handles[NVFP4_MAX_DEVICES], gemm_handles[NVFP4_MAX_DEVICES];
    if (!configured[shape.device]) {
        const cudaError_t failed = cudaFuncSetAttribute(streamk_gemm_kernel,
                                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SHARED_BYTES);
        if (failed != cudaSuccess) return failed;
        configured[shape.device] = true;
    }
    streamk_params params;  // entries past those copied stay unwritten: never read
    params.device_table = device_table;
    params.num_entries = num_entries;
    if (!device_table) memcpy(params.entries, host_entries, sizeof(nvfp4_group_entry) * (size_t)num_entries);
    const int ctas = shape.grid;
    const workspace_layout w = layout_for(shape.scratch_bytes, ctas, num_entries);
    cudaMemPool_t pool;
    cudaError_t failed = workspace_pool(shape.device, &pool);
    if (failed != cudaSuccess) return failed;
    uint8_t *workspace;
    failed = cudaMallocFromPoolAsync(reinterpret_cast<void **>(&workspace), w.bytes, pool, stream);
    if (failed != cudaSuccess) return failed;
    params.scratch = workspace;
    params.partials = reinterpret_cast<float *>(workspace + w.partials);
    params.flags = reinterpret_cast<int32_t *>(workspace + w.flags);
    params.problems = reinterpret_cast<hopper_problem *>(workspace + w.problems);
    params.prefix = reinterpret_cast<hopper_prefix *>(workspace + w.prefix);
    params.ctas = ctas;
    const int64_t rows = shape.scratch_bytes / TOKEN_ROW_BYTES;
    const int64_t wanted = (rows + PREPASS_THREADS - 1) / PREPASS_THREADS;
    const int prepass_grid = (int)(wanted < 1 ? 1 : wanted < (int64_t)ctas * PREPASS_BLOCKS_PER_SM ? wanted : (int64_t)ctas * PREPASS_BLOCKS_PER_SM);
    failed = launch_kernel(token_prepass_kernel, prepass_handles, shape.device, prepass_grid, PREPASS_THREADS,
                           0, stream, params);
    if (failed == cudaSuccess)
        failed = launch_kernel(streamk_gemm_kernel, gemm_handles, shape.device, ctas, THREADS,
                               (int)SHARED_BYTES, stream, params);
    const cudaError_t freed = cudaFreeAsync(workspace, stream);
    return failed != cudaSuccess ? failed : freed;
}

}  // namespace

extern "C" int nvfp4_hopper_streamk_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                           int32_t num_entries, const nvfp4_launch_shape *shape, void *stream_handle) {
    cudaStream_t stream = static_cast<cudaStream_t>(stream_handle);
    cudaError_t failed;
    if (!device_table && num_entries > LARGE_TABLE) failed = cudaErrorInvalidValue;
    else failed = launch_streamk(host_entries, device_table, num_entries, *shape, stream);
    return failed != cudaSuccess ? failed : cudaGetLastError();
}
