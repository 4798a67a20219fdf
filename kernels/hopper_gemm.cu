// hopper_gemm.cu: the Hopper (sm_90a) NVFP4 grouped GEMM, c = (a*sfa) @ (b*sfb)^T, on wgmma.
//
// Work unit: 128 weight rows (rows of b, columns of c) of one group and batch slice, by one token tile (rows
// of a) of at most params.token_tile <= 192 rows, which the planner chooses per call (nvfp4_schedule_units)
// and which each group splits evenly into multiples of 8 rows (group_table.h). The operands are swapped on
// the tensor cores: the weights sit on wgmma's 64-row side, decoded in registers straight into the A
// fragments; the tokens are wgmma's n side, read by descriptor from a 128-byte-swizzled fp16 tile in shared
// memory, n = 128 for tiles of up to 128 rows and 192 above (mma_tokens: ptxas affords two widths).
//
// Persistent grid: CTA i runs units i, i + gridDim.x, ...; its three roles walk that same sequence and meet
// only at mbarriers. 512 threads, one CTA per SM:
//  - warp 0, the copier: per 256-K stage of a unit, its lane 0 issues bulk tensor copies (TMA) of the packed
//    weight and token rows, as 64-row boxes, and one bulk copy of the stage's scale atoms per 128-row block,
//    into one of two stage buffers; the stage's `full` mbarrier completes when every byte has landed, and a
//    stage is refilled once its `empty` mbarrier says every reader is done. The tensor maps are made per unit
//    on the device from a host-made template (retarget_tensor_map), so the host does no per-call map work.
//  - warps 1-7, the token decoders: per 64-K block, decode the stage's token rows into one of four fp16 tiles
//    (one thread per row), once for both consumers.
//  - warpgroups 2 and 3, the consumers, 64 weight rows each: per 64-K block, issue the block's wgmma on
//    fragments decoded earlier, then decode the next block's fragments from the stage while the wgmma runs
//    (two fragment sets). After the unit's last block: accumulators * 2^14 rounded to fp16, transposed
//    through shared memory, written to c with 16-byte stores.
// Warpgroups 0-1 give registers to the consumers (setmaxnreg), which hold up to 96 + 64 fp32 accumulators
// (one set per wgmma width).
//
// Measurements, profiles and the variants that ran slower: docs/performance.md.
//
// K is permuted inside each 64-K block so that a thread reads contiguous bytes: lane t of a quad reads
// original k in [16t, 16t + 16) (one scale group) of its rows and decodes them into 8 half2 pairs
// (dequant_e2m1x8_paired); pair p fills fragment slots 2t, 2t+1 (p even) or 2t+8, 2t+9 (p odd) of k16
// step p / 2. The token decode puts pair p at the same wgmma k index, so every dot product is unchanged.
// Decoded values carry 2^-7 each (nvfp4.cuh), removed in the epilogue.
#include <cuda_runtime.h>
#include <stdint.h>

#include "grouped_launch.cuh"
#include "launchers.h"
#include "nvfp4.cuh"
#include "sm90_ptx.cuh"
#include "wgmma_rs.cuh"

namespace {

constexpr int KBLOCK = 64;                         // K elements per 64-K block: 4 scales per row, 4 k16 steps
constexpr int KBLOCK_BYTES = KBLOCK / 2;           // packed bytes per row and block
constexpr int STAGE_KBLOCKS = 4;                   // 64-K blocks per pipeline stage
constexpr int STAGE_ROW_BYTES = STAGE_KBLOCKS * KBLOCK_BYTES;  // a packed row's share of one stage: 128
constexpr int BOX_ROWS = 64;                       // rows per bulk tensor copy (box: 64 rows x STAGE_ROW_BYTES)
constexpr int BOX_BYTES = BOX_ROWS * STAGE_ROW_BYTES;
constexpr int MAP_SLOTS = 4;                       // tensor maps per operand and SM, cycled per unit (run_copier)
constexpr int MAX_SM_IDS = 256;                    // %smid values the map slots cover (Hopper has <= 144 SMs)
constexpr int STAGES = 2;
constexpr int DECODED_TILES = 4;
constexpr int WGMMA_IN_FLIGHT = 2;                 // a consumer's wgmma groups in flight: 2 fragment sets
constexpr int WEIGHT_ROWS = NVFP4_TILE_N;          // per unit
constexpr int CONSUMER_ROWS = 64;                  // per consumer warpgroup: wgmma's M
constexpr int MAX_TOKENS = NVFP4_MAX_TOKEN_TILE;   // per unit
constexpr int CHUNK = 64;                          // tokens per epilogue pass
constexpr int TOKEN_ROWBLOCKS = (MAX_TOKENS - 1) / NVFP4_SF_ATOM_ROWS + 2;  // scale atom rows a tile can touch
constexpr int EPILOGUE_PITCH = CHUNK * 2 + 16;     // bytes per token row of the epilogue's transposed tile
constexpr int PRODUCERS = 2, CONSUMERS = 2;        // warpgroups
constexpr int COPIER_WARPS = 1, DECODER_WARPS = 4 * PRODUCERS - COPIER_WARPS;
constexpr int CONSUMER_WARPS = 4 * CONSUMERS;
constexpr int DECODER_THREADS = 32 * DECODER_WARPS;
constexpr int THREADS = 128 * (PRODUCERS + CONSUMERS);
constexpr int PRODUCER_REGISTERS = 80;  // setmaxnreg: 256 x 80 + 256 x 176 = 512 x 128, what the launch holds
constexpr int CONSUMER_REGISTERS = 176;
static_assert(PRODUCERS * 128 * PRODUCER_REGISTERS + CONSUMERS * 128 * CONSUMER_REGISTERS <= 65536,
              "setmaxnreg.inc waits forever for registers the launch does not hold");
static_assert(CONSUMERS * CONSUMER_ROWS == WEIGHT_ROWS, "the consumers cover the unit's weight rows");

// Packed rows land as the bulk tensor copies write them: STAGE_ROW_BYTES (128) a row, 16-byte chunk c of row r
// at chunk c ^ (r % 8) (the 128-byte swizzle; staged_chunk), so that the 8 rows a warp reads at once spread over
// all banks.
struct stage_buffers {
    uint8_t weights[WEIGHT_ROWS * STAGE_ROW_BYTES];  // 1024-byte aligned: the swizzle's 8-row atoms
    uint8_t tokens[MAX_TOKENS * STAGE_ROW_BYTES];
    uint8_t weight_scales[STAGE_KBLOCKS][NVFP4_SF_ATOM_BYTES];
    uint8_t token_scales[TOKEN_ROWBLOCKS][STAGE_KBLOCKS][NVFP4_SF_ATOM_BYTES];
};

struct shared_storage {
    __half decoded[DECODED_TILES][MAX_TOKENS * KBLOCK];  // 1024-byte aligned: the swizzle's 8-row atoms
    stage_buffers stages[STAGES];
    uint8_t epilogue[CONSUMERS][CHUNK * EPILOGUE_PITCH];
    CUtensorMap tensor_maps[2];  // the copier's next tensor maps (tokens, weights), before they go to global memory
    uint64_t stage_full[STAGES], stage_empty[STAGES];
    uint64_t decoded_full[DECODED_TILES], decoded_empty[DECODED_TILES];
};
constexpr size_t SHARED_BYTES = sizeof(shared_storage) + 1024;  // + room to align the base to 1024
static_assert(sizeof(stage_buffers) % 1024 == 0 && (DECODED_TILES * MAX_TOKENS * KBLOCK * 2) % 1024 == 0,
              "stage buffers keep the 512-byte alignment of the copies' swizzle atoms");

// Byte offset, inside a staged row, of 16-byte chunk `chunk` (the bulk tensor copies' swizzle: 128-byte rows use
// the 128-byte pattern, 64-byte rows the 64-byte one).
__device__ __forceinline__ int staged_chunk(int row, int chunk) {
    return (chunk ^ ((row * STAGE_ROW_BYTES >> 7) & (STAGE_ROW_BYTES / 16 - 1))) * 16;
}

// The tensor maps of the units a CTA copies, in global memory (the bulk tensor copy reads its map from there or
// from the kernel parameters, and these change per unit): per SM (one CTA per SM, whatever launch it belongs
// to), MAP_SLOTS units' worth, each a map of the tokens (a) and of the weights (b).
__device__ CUtensorMap unit_tensor_maps[MAX_SM_IDS][MAP_SLOTS][2];

// Named barrier of one consumer warpgroup's 128 threads (barrier 0 is __syncthreads).
__device__ __forceinline__ void sync_consumer(int consumer) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(1 + consumer) : "memory");
}

// The scale atoms of `kblocks` consecutive 64-K blocks of one 128-row block into consecutive atoms of shared
// memory: one bulk copy when they are consecutive in memory too (the blocked layout's own order), else one per atom.
__device__ __forceinline__ void copy_scale_atoms(uint8_t *dst, const uint8_t *src, int32_t kblock_stride, int kblocks,
                                                 uint64_t *bar) {
    if (kblock_stride == NVFP4_SF_ATOM_BYTES || kblocks == 1) {
        bulk_copy(dst, src, kblocks * NVFP4_SF_ATOM_BYTES, bar);
        return;
    }
    for (int kb = 0; kb < kblocks; kb++) bulk_copy(dst + kb * NVFP4_SF_ATOM_BYTES, src + (int64_t)kb * kblock_stride, NVFP4_SF_ATOM_BYTES, bar);
}

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

// The wgmma width (tokens) a consumer runs a tile of `rows` token rows with: MMA_NARROW or MAX_TOKENS. Only
// two widths: ptxas gives each width's accumulators registers of their own, and with more than two (or
// than a few narrow ones) it runs out and serialises every wgmma (warning C7512 with -Xptxas -v).
constexpr int MMA_NARROW = 128;
__device__ __forceinline__ int mma_tokens(int rows) { return rows <= MMA_NARROW ? MMA_NARROW : MAX_TOKENS; }

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
__device__ __forceinline__ void run_copier(const grouped_params<CAPACITY> &params, shared_storage &shared, int lane) {
    uint32_t sm_id;
    asm("mov.u32 %0, %%smid;\n" : "=r"(sm_id));
    int stage_count = 0, unit_count = 0;
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x, unit_count++) {
        const unit_coords u = locate_unit(params, unit);
        const nvfp4_group_entry &g = *u.group;
        const uint8_t *sfa = g.sfa + u.slice * g.sfa_batch_stride, *sfb = g.sfb + u.slice * g.sfb_batch_stride;
        const int kblocks = g.k / KBLOCK;
        const int first_rowblock = u.m0 / NVFP4_SF_ATOM_ROWS;
        const int token_rowblocks = (u.m0 + u.rows - 1) / NVFP4_SF_ATOM_ROWS - first_rowblock + 1;
        const int token_boxes = (u.rows + BOX_ROWS - 1) / BOX_ROWS;

        // This unit's tensor maps: the template pointed at this slice of a and b, written to a slot that no copy
        // still reads (slot reuse is MAP_SLOTS units later; every unit has at least one stage, and before
        // issuing the previous unit's last stage this warp waited for the stage STAGES before it to be consumed,
        // so the copies of units up to MAP_SLOTS - 1 = STAGES back have all landed).
        static_assert(MAP_SLOTS >= STAGES + 1, "a map slot is rewritten only after its copies have landed");
        CUtensorMap *maps = unit_tensor_maps[sm_id][unit_count % MAP_SLOTS];
        if (lane == 0) {
            shared.tensor_maps[0] = params.tensor_map;
            shared.tensor_maps[1] = params.tensor_map;
            // The token map ends with the tile's rows, so a box's rows past them cost no memory traffic.
            retarget_tensor_map(&shared.tensor_maps[0], g.a + u.slice * g.a_batch_stride, g.k / 2, u.m0 + u.rows,
                                g.a_row_stride);
            retarget_tensor_map(&shared.tensor_maps[1], g.b + u.slice * g.b_batch_stride, g.k / 2, g.n, g.b_row_stride);
        }
        __syncwarp();
        publish_tensor_map(&maps[0], &shared.tensor_maps[0]);
        publish_tensor_map(&maps[1], &shared.tensor_maps[1]);
        if (lane == 0) {
            acquire_tensor_map(&maps[0]);
            acquire_tensor_map(&maps[1]);
        }

        for (int kb0 = 0; kb0 < kblocks; kb0 += STAGE_KBLOCKS, stage_count++) {
            const ring_position stage = ring_at(stage_count, STAGES);
            stage_buffers &buffers = shared.stages[stage.index];
            const int stage_kblocks = min(STAGE_KBLOCKS, kblocks - kb0);
            uint64_t *full = &shared.stage_full[stage.index];
            // Lane 0 issues the whole stage: two boxes of weight rows and one box per 64 token rows (each box
            // 128 bytes = 256 K wide; past K or past the rows they fill with zeros, which no output reads), and
            // per 128-row block the stage's scale atoms, consecutive in the blocked layout, as one bulk copy.
            // Few instructions: the copier shares the memory-instruction queue with the decoders' shared-memory
            // traffic, and with 16-byte copies of the atoms (or one bulk copy per atom) issuing a stage took
            // 2000-3500 clocks, which made the copier the bottleneck.
            if (lane == 0) {
                barrier_wait(&shared.stage_empty[stage.index], stage.parity ^ 1);
                barrier_arrive_expect_bytes(full, (WEIGHT_ROWS / BOX_ROWS + token_boxes) * BOX_BYTES +
                                                      (1 + token_rowblocks) * stage_kblocks * NVFP4_SF_ATOM_BYTES);
                const int x = kb0 * KBLOCK_BYTES;
                for (int box = 0; box < WEIGHT_ROWS / BOX_ROWS; box++)
                    tensor_copy(buffers.weights + box * BOX_BYTES, &maps[1], x, u.n0 + box * BOX_ROWS, full);
                for (int box = 0; box < token_boxes; box++)
                    tensor_copy(buffers.tokens + box * BOX_BYTES, &maps[0], x, u.m0 + box * BOX_ROWS, full);
                copy_scale_atoms(buffers.weight_scales[0],
                                 sfb + (int64_t)(u.n0 / NVFP4_SF_ATOM_ROWS) * g.sfb_rowblock_stride +
                                     (int64_t)kb0 * g.sfb_kblock_stride,
                                 g.sfb_kblock_stride, stage_kblocks, full);
                for (int rowblock = 0; rowblock < token_rowblocks; rowblock++)
                    copy_scale_atoms(buffers.token_scales[rowblock][0],
                                     sfa + (int64_t)(first_rowblock + rowblock) * g.sfa_rowblock_stride +
                                         (int64_t)kb0 * g.sfa_kblock_stride,
                                     g.sfa_kblock_stride, stage_kblocks, full);
            }
        }
    }
}

// ---- Token decoders (warpgroup 1) --------------------------------------------------------------------------

template <int CAPACITY>
__device__ __forceinline__ void run_token_decoder(const grouped_params<CAPACITY> &params, shared_storage &shared,
                                                  int thread) {
    const int lane = thread % 32;
    int stage_count = 0, block_count = 0;
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x) {
        const unit_coords u = locate_unit(params, unit);
        const int kblocks = u.group->k / KBLOCK, tile_rows = mma_tokens(u.rows);
        const int first_rowblock = u.m0 / NVFP4_SF_ATOM_ROWS;
        for (int kb = 0; kb < kblocks; kb++, block_count++) {
            const ring_position stage = ring_at(stage_count, STAGES), tile = ring_at(block_count, DECODED_TILES);
            const int kb_in_stage = kb % STAGE_KBLOCKS;
            if (kb_in_stage == 0) barrier_wait(&shared.stage_full[stage.index], stage.parity);
            barrier_wait(&shared.decoded_empty[tile.index], tile.parity ^ 1);
            const stage_buffers &buffers = shared.stages[stage.index];
            uint8_t *decoded = reinterpret_cast<uint8_t *>(shared.decoded[tile.index]);
            // One thread per token row: its 32 packed bytes (4 scale groups) and 4 scales in three loads, its
            // 128 decoded bytes in eight 16-byte stores. 16-byte chunk c of the row holds pair c of each
            // group (dequant_e2m1x8_paired's pairs; chunk c feeds k16 step c / 2) and sits at chunk
            // c ^ (row % 8) by the 128-byte swizzle. Rows past the tile's tokens, up to the wgmma's width,
            // decode as zeros.
            for (int row = thread; row < tile_rows; row += DECODER_THREADS) {
                uint4 packed[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
                uint32_t scale_bytes = 0;
                if (row < u.rows) {
                    const uint8_t *src = buffers.tokens + row * STAGE_ROW_BYTES;
                    packed[0] = *reinterpret_cast<const uint4 *>(src + staged_chunk(row, 2 * kb_in_stage));
                    packed[1] = *reinterpret_cast<const uint4 *>(src + staged_chunk(row, 2 * kb_in_stage + 1));
                    const int token = u.m0 + row;
                    scale_bytes = *reinterpret_cast<const uint32_t *>(
                        &buffers.token_scales[token / NVFP4_SF_ATOM_ROWS - first_rowblock][kb_in_stage][sf_atom_offset(token)]);
                }
                __half2 scales[2];
                e4m3x4_to_scaled_half2(scale_bytes, scales);
                const uint32_t words[4][2] = {{packed[0].x, packed[0].y}, {packed[0].z, packed[0].w},
                                              {packed[1].x, packed[1].y}, {packed[1].z, packed[1].w}};
                uint8_t *row_bytes = decoded + row * (KBLOCK * 2);
                const int phase = row % 8;
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    uint32_t pairs[4][4];  // [scale group][pair]
#pragma unroll
                    for (int group = 0; group < 4; group++)
                        dequant_e2m1x8_paired(words[group][half],
                                              group % 2 ? __high2half2(scales[group / 2]) : __low2half2(scales[group / 2]),
                                              pairs[group]);
#pragma unroll
                    for (int p = 0; p < 4; p++)
                        *reinterpret_cast<uint4 *>(row_bytes + ((4 * half + p) ^ phase) * 16) =
                            make_uint4(pairs[0][p], pairs[1][p], pairs[2][p], pairs[3][p]);
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

// One 64-K block's wgmma over a decoded token tile of TOKENS rows, between one fence and one commit: one wgmma
// per k16 step covers every token, so the A fragments are read from registers once per step. TOKENS is a
// template parameter so that no branch separates the fence, the wgmma and the commit: with one, the compiler
// closes the group with a dummy wgmma, and wait_group 1 then waits for this block's real ones.
template <int TOKENS>
__device__ __forceinline__ void block_mma(float (&acc)[TOKENS / 2], const uint32_t (&frag)[4][4],
                                          const __half *tile) {
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ks++) wgmma_rs<TOKENS>::mma(acc, frag[ks], swizzled_tile_descriptor(tile + ks * 16));
    wgmma_commit();
}

// Where a consumer thread is in the rings, carried across units.
struct consumer_state {
    int stage_count, block_count;
};

// One unit of a consumer warpgroup: its 64 weight rows by TOKENS token rows (the tile's rows rounded up to
// 8). Everything that touches the accumulators is inside this one instantiation: when the accumulators of
// several token counts meet after a branch, or the wgmma loop sits in a called function, ptxas serialises
// every wgmma (warnings C7510, C7511, C7515, shown only with -Xptxas -v).
template <int TOKENS, int CAPACITY>
__device__ __forceinline__ void consumer_unit(const unit_coords &u, shared_storage &shared, int consumer,
                                              int thread, consumer_state &state) {
    const int warp = thread / 32, lane = thread % 32, quad_row = lane / 4, quad_lane = lane % 4;
    const int unit_row = consumer * CONSUMER_ROWS + warp * 16 + quad_row;  // this thread's weight rows: +0, +8
    const nvfp4_group_entry &g = *u.group;
    const int kblocks = __shfl_sync(0xFFFFFFFFu, g.k / KBLOCK, 0);  // warp-uniform, visibly to the compiler
    const int weight_rows = g.n - u.n0;

    // A fragments of the four k16 steps: {row, slots 2t}, {row + 8, 2t}, {row, 2t+8}, {row + 8, 2t+8}.
    auto load_fragments = [&](int kb, uint32_t (&frag)[4][4]) {
        const ring_position stage = ring_at(state.stage_count, STAGES);
        const int kb_in_stage = kb % STAGE_KBLOCKS;
        if (kb_in_stage == 0) barrier_wait(&shared.stage_full[stage.index], stage.parity);
        const stage_buffers &buffers = shared.stages[stage.index];
        uint32_t pairs[2][8];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = unit_row + 8 * h;
            row_part p;
            p.packed = *reinterpret_cast<const uint2 *>(buffers.weights + row * STAGE_ROW_BYTES +
                                                        staged_chunk(row, 2 * kb_in_stage + quad_lane / 2) +
                                                        8 * (quad_lane % 2));
            p.scale = row < weight_rows ? buffers.weight_scales[kb_in_stage][sf_atom_offset(row) + quad_lane] : 0;
            decode_row_part(p, pairs[h]);
        }
        if (kb_in_stage == STAGE_KBLOCKS - 1 || kb == kblocks - 1) {
            __syncwarp();
            if (lane == 0) barrier_arrive(&shared.stage_empty[stage.index]);
            state.stage_count++;
        }
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            frag[ks][0] = pairs[0][2 * ks];
            frag[ks][1] = pairs[1][2 * ks];
            frag[ks][2] = pairs[0][2 * ks + 1];
            frag[ks][3] = pairs[1][2 * ks + 1];
        }
    };

    float acc[TOKENS / 2];
#pragma unroll
    for (int i = 0; i < TOKENS / 2; i++) acc[i] = 0.0f;
    uint32_t frag_a[4][4], frag_b[4][4];  // named sets: register arrays need constant indices

    // Block kb's wgmma runs on frag while the next block's fragments are decoded into next_frag, which the
    // previous block's wgmma (finished by wait_group 1) no longer reads.
    auto step = [&](int kb, const uint32_t (&frag)[4][4], uint32_t (&next_frag)[4][4]) {
        const ring_position tile = ring_at(state.block_count, DECODED_TILES);
        barrier_wait(&shared.decoded_full[tile.index], tile.parity);
        block_mma<TOKENS>(acc, frag, shared.decoded[tile.index]);
        wgmma_wait<WGMMA_IN_FLIGHT - 1>();
        if (kb >= WGMMA_IN_FLIGHT - 1 && lane == 0)
            barrier_arrive(&shared.decoded_empty[ring_at(state.block_count - (WGMMA_IN_FLIGHT - 1), DECODED_TILES).index]);
        state.block_count++;
        if (kb + 1 < kblocks) load_fragments(kb + 1, next_frag);
    };
    load_fragments(0, frag_a);
    for (int kb = 0; kb < kblocks; kb += 2) {
        step(kb, frag_a, frag_b);
        if (kb + 1 < kblocks) step(kb + 1, frag_b, frag_a);
    }
    wgmma_wait<0>();
    for (int b = min(kblocks, WGMMA_IN_FLIGHT - 1); b > 0 && lane == 0; b--)
        barrier_arrive(&shared.decoded_empty[ring_at(state.block_count - b, DECODED_TILES).index]);

    // Epilogue, 64 tokens at a time. acc[32j + 4i + e] is weight row (quad_row + 8 * (e / 2)) of this warp and
    // token 64j + 8i + 2 * quad_lane + e % 2; staged as [token][weight row] so that a c row is contiguous.
    uint8_t *staging = shared.epilogue[consumer];
    uint8_t *c = g.c + u.slice * g.c_batch_stride;
    const int col0 = u.n0 + consumer * CONSUMER_ROWS;
    const bool wide_stores = g.c_row_stride % 16 == 0 && reinterpret_cast<uintptr_t>(c) % 16 == 0;
#pragma unroll
    for (int j = 0; j < (TOKENS + CHUNK - 1) / CHUNK; j++) {
        const int tokens = min(u.rows - j * CHUNK, CHUNK);
        if (tokens <= 0) break;
#pragma unroll
        for (int i = 0; i < CHUNK / 8 && 8 * (CHUNK / 8 * j + i) < TOKENS; i++)
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

template <int CAPACITY>
__device__ __forceinline__ void run_consumer(const grouped_params<CAPACITY> &params, shared_storage &shared,
                                             int consumer, int thread) {
    consumer_state state = {0, 0};
    for (int unit = blockIdx.x; unit < params.total_tiles; unit += gridDim.x) {
        const unit_coords u = locate_unit(params, unit);
        // Warp-uniform by construction; the shuffle lets the compiler see it, so that the wgmma inside the
        // branches on it stay asynchronous (C7520 otherwise).
        if (__shfl_sync(0xFFFFFFFFu, mma_tokens(u.rows), 0) == MMA_NARROW)
            consumer_unit<MMA_NARROW, CAPACITY>(u, shared, consumer, thread, state);
        else
            consumer_unit<MAX_TOKENS, CAPACITY>(u, shared, consumer, thread, state);
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
            barrier_init(&shared.stage_full[s], 1);  // the copier's expect_tx arrival
            barrier_init(&shared.stage_empty[s], CONSUMER_WARPS + DECODER_WARPS);
        }
        for (int t = 0; t < DECODED_TILES; t++) {
            barrier_init(&shared.decoded_full[t], DECODER_WARPS);
            barrier_init(&shared.decoded_empty[t], CONSUMER_WARPS);
        }
        fence_barrier_init();
    }
    __syncthreads();

    // Roles by warpgroup and warp (warp-uniform, which the shuffles make visible to the compiler).
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, tid / 128, 0), warp = __shfl_sync(0xFFFFFFFFu, tid / 32, 0);
    if (warpgroup < PRODUCERS) {
        setmaxnreg_dec<PRODUCER_REGISTERS>();
        if (warp < COPIER_WARPS) run_copier(params, shared, tid);  // one warp
        else run_token_decoder(params, shared, tid - 32 * COPIER_WARPS);
    } else {
        setmaxnreg_inc<CONSUMER_REGISTERS>();
        run_consumer(params, shared, warpgroup - PRODUCERS, tid % 128);
    }
}

// The tensor map every unit's maps start from: bytes (uint8), 2 dimensions, 64-row boxes of STAGE_ROW_BYTES, its
// swizzle, zeros past the ends. The kernel replaces address, sizes and stride per unit (retarget_tensor_map), so
// one made on the host at first use serves every call; it holds no device state. Null if the driver cannot
// make it (cuTensorMapEncodeTiled comes from the driver through the runtime, so nothing links libcuda).
bool make_tensor_map_template(CUtensorMap *tensor_map) {
    void *entry = driver_entry_point("cuTensorMapEncodeTiled");
    if (!entry) return false;
    static __align__(16) uint8_t placeholder[BOX_BYTES];  // any 16-byte aligned address; replaced per unit
    const cuuint64_t dims[2] = {STAGE_ROW_BYTES, BOX_ROWS}, strides[1] = {STAGE_ROW_BYTES};
    const cuuint32_t box[2] = {STAGE_ROW_BYTES, BOX_ROWS}, element_strides[2] = {1, 1};
    return reinterpret_cast<encode_tiled_fn>(entry)(tensor_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, placeholder, dims,
                                                    strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Made once per process (a function-local static: thread-safe initialisation), on the first Hopper launch.
const CUtensorMap *tensor_map_template() {
    static CUtensorMap tensor_map;
    static const bool made = make_tensor_map_template(&tensor_map);
    return made ? &tensor_map : nullptr;
}

template <int CAPACITY>
struct hopper_family {
    static cudaError_t launch(grouped_params<CAPACITY> &params, const nvfp4_launch_shape &shape, cudaStream_t stream) {
        // The shared-memory opt-in is a per-device attribute of the function: set once per device.
        static bool configured[NVFP4_MAX_DEVICES];
        static CUfunction handles[NVFP4_MAX_DEVICES];
        if (!configured[shape.device]) {
            const cudaError_t failed = cudaFuncSetAttribute(
                hopper_gemm_kernel<CAPACITY>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SHARED_BYTES);
            if (failed != cudaSuccess) return failed;
            configured[shape.device] = true;
        }
        const CUtensorMap *tensor_map = tensor_map_template();
        if (!tensor_map) return cudaErrorNotSupported;
        params.tensor_map = *tensor_map;
        return launch_kernel(hopper_gemm_kernel<CAPACITY>, handles, shape.device, shape.grid, THREADS, (int)SHARED_BYTES,
                             stream, params);
    }
};

}  // namespace

extern "C" int nvfp4_hopper_launch(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                                   int32_t num_entries, const nvfp4_launch_shape *shape, void *stream) {
    return launch_grouped<hopper_family>(host_entries, device_table, num_entries, shape, stream);
}
