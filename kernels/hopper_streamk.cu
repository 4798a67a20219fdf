// hopper_streamk.cu: the Hopper (sm_90a) NVFP4 grouped GEMM, c = (a*sfa) @ (b*sfb)^T, in two launches over the
// schedule of hopper_schedule.h (units of 128 weight rows x one token chunk of <= 240 rows, split stream-K).
//
// 1. token_prepass_kernel decodes every group's tokens (rows of a) once per call into an fp16 scratch buffer:
//    a * sfa * 2^-7, exact, each 64-K block in the K order of weight_k_of_position and laid out so that one
//    linear bulk copy of a chunk's k-block (width x 128 bytes) lands as wgmma's 128-byte-swizzled B tile. One
//    thread per scratch row of 128 bytes (a token row's 64-K block: block (x, y) holds k-block y of 256 rows);
//    every block first builds the schedule's prefix tables in shared memory from the sizes. One more block, past
//    the rows (last column, row 0), plans every CTA's pieces (plan_pieces) and sets the stream-K flags.
//    An MoE-layout call (grouped_mm), whose sizes only the device holds, runs moe_prepass_kernel instead: every
//    block derives the layout from the expert end offsets (moe_layout.cuh), and the planning block also writes the
//    group table; with more experts than its threads, the table kernel (moe_table.cu) runs first and this pre-pass
//    copies the schedule's tables it wrote.
// 2. streamk_gemm_kernel, persistent (one CTA per SM), runs its CTA's pieces as the pre-pass planned them. Per CTA:
//     - warp 0, the scheduler: reads the CTA's piece records and hands each piece to the copier and the consumers
//       through a small ring of descriptors, with the piece's weight tensor map retargeted to its group's b and
//       published to one of the CTA's map slots in the workspace.
//     - warp 1, lane 0, the copier: two rings of stages. Per 64-K block one bulk copy of the chunk's decoded token
//       block (evict-last in L2: every weight tile of the group reads it again) into the token ring; per
//       WEIGHT_GROUP k-blocks one tensor copy of 128 weight rows x 128 bytes (whole lines, 128-byte swizzle;
//       evict-first: streamed once) and one bulk copy of their scale atoms into the weight ring. The token ring is
//       one weight stage deep: k-block j of a weight stage goes to token stage j (a stage past a piece's last
//       k-block completes empty), so the consumers address every token stage and barrier by a constant. A stage's
//       `full` mbarrier completes when every byte has landed; it is refilled once `empty` says all eight consumer
//       warps are done with it. A few dozen instructions a k-block, from a handful of registers.
//     - warps 2-3 leave at once; warpgroup 0 hands registers to the consumers (setmaxnreg).
//     - warpgroups 1 and 2, the consumers, 64 weight rows each: per k16 step they issue wgmma m64nNk16 (N = the
//       chunk's width, its rows rounded up to 16) with A from registers, on fragments decoded during the step
//       before, then decode the next step's fragments from the packed bytes while that wgmma runs
//       (weight_fragments.cuh). A piece runs in a loop compiled for its N (wgmma_rs.cuh), 15 widths (16 .. 240):
//       everything that touches the accumulators sits in that one instantiation, which keeps the wgmma
//       asynchronous; with more than 16 widths in one kernel ptxas serialises every wgmma (C7512).
//    Where every unit fits one CTA at a cost near an even share (hopper_whole_units_fit, decided by the pre-pass
//    from the sizes), CTA q runs unit q whole instead.
//    A piece that covers its unit's whole K writes c. Otherwise each piece but the unit's first leaves its fp32
//    accumulators in its CTA's workspace slot and raises its flag; the first piece's CTA (which reaches it last
//    in its range) adds those partials, then writes c.
//
// The schedule's arithmetic (64-bit divisions and searches) runs only in the pre-pass's planning block, each phase
// spread over its threads (plan_pieces).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "grouped_launch.cuh"
#include "hopper_schedule.h"
#include "launchers.h"
#include "moe_layout.cuh"
#include "nvfp4.cuh"
#include "sm90_ptx.cuh"
#include "weight_fragments.cuh"
#include "wgmma_rs.cuh"

namespace {

constexpr int KBLOCK_BYTES = HOPPER_KBLOCK_K / 2;  // packed bytes per row and k-block
constexpr int TOKEN_ROW_BYTES = HOPPER_SCRATCH_ROW_BYTES;  // a decoded token row's k-block: 64 fp16
constexpr int WEIGHT_ROWS = HOPPER_WEIGHT_ROWS;
constexpr int MAX_WIDTH = HOPPER_CHUNK_MAX_ROWS;      // 240: see the width cases in run_consumer
constexpr int CONSUMER_ROWS = 64;                  // per consumer warpgroup: wgmma's M
constexpr int CONSUMERS = 2;                       // warpgroups
constexpr int CONSUMER_WARPS = 4 * CONSUMERS;
constexpr int CONSUMER_THREADS = 128 * CONSUMERS;
constexpr int THREADS = 128 + CONSUMER_THREADS;
constexpr int TOKEN_STAGES = 4;                  // token ring: one 64-K block a stage, up to 30 KB (240 rows);
                                                 // one per k-block of a weight stage (run_copier)
constexpr int WEIGHT_GROUP = 4;                  // 64-K blocks per weight stage: a row's 128 bytes, one whole line
constexpr int WEIGHT_STAGES = 4;                 // weight ring (from DRAM: deeper in K than the token ring)
constexpr int WEIGHT_ROW_BYTES = WEIGHT_GROUP * KBLOCK_BYTES;
constexpr int PIECE_SLOTS = 4;                   // pieces the scheduler may run ahead of the consumers
constexpr int MAP_SLOTS = PIECE_SLOTS + 1;       // weight tensor maps per CTA: see run_scheduler
constexpr int PRODUCER_REGISTERS = 40;   // setmaxnreg: 128 x 40 + 256 x 232 = 64512 of the 65536 the launch holds
constexpr int CONSUMER_REGISTERS = 232;  // (the copier spills a little of its per-piece schedule state: off the hot loop)
constexpr int EPILOGUE_TOKENS = 64;      // tokens per epilogue pass
constexpr int EPILOGUE_PITCH = CONSUMER_ROWS * 2 + 16;  // bytes per staged token row: 64 fp16 + 16 against conflicts
constexpr int PREPASS_THREADS = 256;
constexpr int MAX_PROBLEMS = NVFP4_STREAMK_MAX_GROUPS;  // groups the pre-pass's shared prefix table holds
constexpr int MAX_CTAS = NVFP4_STREAMK_MAX_CTAS;         // CTAs (SMs) whose boundaries the pre-pass holds
constexpr float ACCUMULATOR_SCALE_2 = 16384.0f;  // products of two operands carrying 2^-7 each
static_assert(128 * PRODUCER_REGISTERS + CONSUMER_THREADS * CONSUMER_REGISTERS <= 65536,
              "setmaxnreg.inc waits forever for registers the launch does not hold");
static_assert(CONSUMERS * CONSUMER_ROWS == WEIGHT_ROWS, "the consumers cover the unit's weight rows");
static_assert(FRAGMENT_SCALE_LOG2 == -7, "the epilogue removes 2^-14 from every product");

// Where quad lane t finds its 8 bytes of k-block j in weight row r (and r + 8) of a weight stage. The stage is one
// tensor copy of 128 rows x 128 bytes in the 128-byte swizzle, which puts 16-byte chunk c of row r at chunk
// c ^ (r % 8): the 8 rows a warp reads at once then cover every bank twice, the fewest wavefronts for 256 bytes.
// K-block j's 32 bytes are chunks 2j and 2j + 1, lane t's 8 of them in chunk 2j + t / 2 = 2j ^ (t / 2), so
// per k-block only 2j ^ (t / 2) ^ (r % 8) = 2j ^ chunk_key changes.
struct weight_lane {
    uint32_t row_bytes;  // r * 128 + 8 * (t % 2)
    uint32_t chunk_key;  // (t / 2) ^ (r % 8)
    __device__ __forceinline__ weight_lane(int row, int t)
        : row_bytes(row * WEIGHT_ROW_BYTES + 8 * (t % 2)), chunk_key((t / 2) ^ (row % 8)) {}
    __device__ __forceinline__ uint32_t offset(uint32_t j) const { return row_bytes + ((2 * j) ^ chunk_key) * 16; }
};
constexpr uint32_t EIGHT_ROWS_BYTES = 8 * WEIGHT_ROW_BYTES;  // row r + 8: same chunk order (8 is a multiple of 8)

struct weight_stage {
    uint8_t weights[WEIGHT_ROWS * WEIGHT_ROW_BYTES];
    uint8_t scales[WEIGHT_GROUP][NVFP4_SF_ATOM_BYTES];
};

// One piece as the pre-pass plans it for the main kernel (hopper_piece's fields, the
// finalizer's span of partial CTAs and the chunk's scratch offset). The main kernel then runs no schedule
// arithmetic: its 64-bit divisions and searches, run there by one thread per CTA, left the consumers waiting for
// their first piece for microseconds.
struct piece_record {
    int32_t problem, slice, tile, chunk;
    int32_t kb_begin, kb_end, rows, width;
    int32_t is_first, is_complete;
    int32_t q_begin, q_end;  // a split unit's first piece: the CTAs that may hold its partial pieces
    int32_t first_row;       // the chunk's first token row in its group
    int64_t scratch_offset;
};

// CTA q's pieces: records [first, first + count), in unit order. first = (the unit index where q's range begins) +
// q: every CTA boundary before it splits at most one unit, so ranges never overlap and total_units + ctas records
// suffice.
struct piece_range {
    int64_t first;
    int32_t count, unused;
};

// One piece as the scheduler hands it to the copier and the consumers (width 0: the CTA's range is done): what
// each needs, read from shared memory, so that no schedule or table state sits beside the accumulators.
struct piece_desc {
    int32_t problem, slice, tile, chunk;
    int32_t kb_begin, kb_end, rows, width;
    int32_t is_first, is_complete;
    int32_t q_begin, q_end;  // a split unit's first piece: the CTAs that may hold its partial pieces
    int32_t first_row;       // the chunk's first token row in its group
    // For the copier: everything its copies need, so that it holds no schedule or table state.
    const uint8_t *tokens;          // the chunk's decoded tokens at k-block 0
    const uint8_t *sfb;             // the unit's scale atoms at k-block 0
    int64_t sfb_kblock_stride;
    const CUtensorMap *weight_map;  // b of the piece's group and slice
    int32_t n0;                     // the unit's first weight row
};

struct shared_storage {
    uint8_t tokens[TOKEN_STAGES][MAX_WIDTH * TOKEN_ROW_BYTES];  // first: 1024-byte aligned for the swizzle's atoms
    weight_stage weights[WEIGHT_STAGES];
    uint8_t epilogue[CONSUMERS][EPILOGUE_TOKENS * EPILOGUE_PITCH];
    piece_desc pieces[PIECE_SLOTS];
    alignas(128) CUtensorMap weight_map;  // the next piece's weight map, retargeted here before it goes to global memory
    uint64_t token_full[TOKEN_STAGES], token_empty[TOKEN_STAGES];
    uint64_t weight_full[WEIGHT_STAGES], weight_empty[WEIGHT_STAGES];
    uint64_t piece_full[PIECE_SLOTS], piece_empty[PIECE_SLOTS];
};
static_assert((MAX_WIDTH * TOKEN_ROW_BYTES) % 1024 == 0, "every token stage stays 1024-byte aligned");
constexpr size_t SHARED_BYTES = sizeof(shared_storage) + 1024;  // + room to align the base to 1024

// Floats of one CTA's workspace slot: every consumer thread's accumulators of the widest chunk.
constexpr int PARTIAL_FLOATS = CONSUMER_THREADS * (MAX_WIDTH / 2);

// Both kernels' parameters: the group table (by value, or in device memory) and the call's workspace. One
// capacity only: every width's loop is compiled once per kernel, and the kernel holds 32 of them.
struct streamk_params {
    CUtensorMap weight_map;                 // the template every piece's weight map starts from
    const nvfp4_group_entry *device_table;  // non-null: the table lives in device memory
    int32_t num_entries;
    int32_t ctas;                           // the main kernel's grid: one CTA per SM
    int32_t chunk_rows;                     // the call's chunk limit (hopper_choose_chunk_rows), or 0 with
                                            // schedule_tables
    hopper_device_tables *schedule_tables;  // non-null: the schedule's tables, made on the device (the MoE path)
    int32_t out_bf16;                       // c holds bfloat16 instead of float16
    const float *alpha;                     // non-null: c of entry p is multiplied by alpha[p] (device memory)
    uint8_t *scratch;                       // the pre-pass's decoded tokens (hopper_scratch_offset's layout)
    float *partials;                        // [ctas][PARTIAL_FLOATS]: one slot per CTA
    int32_t *flags;                         // [ctas]: SLOT_WAITING, SLOT_PARTIAL or SLOT_EMPTY
    hopper_pos *boundaries;                 // [ctas + 1]: where each CTA's range begins (the pre-pass's)
    piece_range *ranges;                    // [ctas]
    piece_record *records;                  // [total units + ctas]
    CUtensorMap *weight_maps;               // [ctas][MAP_SLOTS]: each CTA's pieces' weight maps, in turn
    nvfp4_group_entry entries[LARGE_TABLE];
};
static_assert(sizeof(streamk_params) <= 4096, "the by-value table must fit the 4 KB parameter space");

__device__ __forceinline__ const nvfp4_group_entry &entry_of(const streamk_params &params, int problem) {
    return params.device_table ? params.device_table[problem] : params.entries[problem];
}

// ---- Token pre-pass ---------------------------------------------------------------------------------------------

// Fills the prefix tables of the first `count` problems in shared memory: each thread sums some problems, then one
// thread scans. The same integer sums as hopper_schedule_init, so every block and the host agree. row_prefix
// counts padded token rows (every slice's chunks at their widths; the host keeps the total within int32).
__device__ __forceinline__ void build_prefix(const hopper_problem *problems, hopper_prefix *prefix,
                                             int32_t *row_prefix, int count) {
    for (int p = threadIdx.x; p < count; p += blockDim.x) {
        prefix[p + 1] = hopper_problem_totals(&problems[p]);
        row_prefix[p + 1] = (int32_t)(problems[p].l * hopper_problem_shape(&problems[p]).tile_width);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        hopper_prefix sum = {0, 0, 0};
        int32_t rows = 0;
        prefix[0] = sum;
        row_prefix[0] = 0;
        for (int p = 0; p < count; p++) {
            sum.cost += prefix[p + 1].cost;
            sum.units += prefix[p + 1].units;
            sum.scratch_bytes += prefix[p + 1].scratch_bytes;
            prefix[p + 1] = sum;
            rows += row_prefix[p + 1];
            row_prefix[p + 1] = rows;
        }
    }
    __syncthreads();
}

// Flag values of a CTA's workspace slot (the pre-pass sets them each call).
constexpr int32_t SLOT_WAITING = 0;  // the CTA's partial piece, if it has one, is not in its slot yet
constexpr int32_t SLOT_PARTIAL = 1;  // the CTA's partial piece is in its slot
constexpr int32_t SLOT_EMPTY = 2;    // the CTA runs nothing: a finalizer whose span covers it skips it

// The pre-pass's planning block plans every CTA's pieces in phases spread over its threads:
//  0. whether CTA q runs unit q whole (hopper_whole_units_fit): the widest unit's cost, a maximum over the
//     problems;
//  1. one thread per CTA boundary q (hopper_cta_begin, a few 64-bit divisions): its position (global memory) and
//     cost (shared memory). With whole units, boundary q is unit q's start instead, and the end past the last
//     unit;
//  2. one thread per CTA q walks its range unit by unit, without divisions or searches, and writes its record
//     range (first = the unit its range begins in + q: every earlier boundary splits at most one unit), its flag
//     and one record per piece. Only the range's last piece can be a split unit's first piece; its CTA span ends at
//     the CTA holding the unit's last k-block, a short scan of the boundary costs.
// __syncthreads orders the phases (global and shared memory alike, within the block).
__device__ __forceinline__ void plan_pieces(const streamk_params &params, const hopper_schedule &s,
                                            int64_t *boundary_costs) {
    const int32_t ctas = params.ctas;
    // A maximum over the problems: each thread's, then each warp's by shuffles, then the warps' (a 64-bit atomic on
    // shared memory is a compare-and-swap loop that serialises every problem).
    __shared__ int64_t warp_widest[PREPASS_THREADS / 32];
    int64_t widest = 0;
    for (int p = threadIdx.x; p < s.count; p += blockDim.x)
        if (s.prefix[p + 1].units > s.prefix[p].units)  // a unit's base-wide chunk is its widest
            widest = max(widest, hopper_problem_shape(&s.problems[p]).full_cost);
    for (int step = 16; step > 0; step /= 2) widest = max(widest, __shfl_xor_sync(0xFFFFFFFFu, widest, step));
    if (threadIdx.x % 32 == 0) warp_widest[threadIdx.x / 32] = widest;
    __syncthreads();
    for (int w = 0; w < PREPASS_THREADS / 32; w++) widest = max(widest, warp_widest[w]);
    const int whole_units = hopper_whole_units_fit(s.total_units, s.total_cost, widest, ctas);
    for (int32_t q = threadIdx.x; q <= ctas; q += blockDim.x) {
        hopper_pos pos = {hopper_unit_end(&s), 0};
        if (!whole_units) pos = hopper_boundary(&s, hopper_cta_cost_begin(&s, q));
        else if (q < s.total_units) pos.unit = hopper_unit_at(&s, q);
        params.boundaries[q] = pos;
        boundary_costs[q] = hopper_pos_cost(&s, pos);
    }
    __syncthreads();
    for (int32_t q = threadIdx.x; q < ctas; q += blockDim.x) {
        const hopper_pos begin = params.boundaries[q], end = params.boundaries[q + 1];
        const int32_t count = boundary_costs[q] == boundary_costs[q + 1]
                                  ? 0
                                  : (int32_t)(end.unit.index - begin.unit.index) + (end.kb > 0 ? 1 : 0);
        params.ranges[q] = piece_range{begin.unit.index + q, count, 0};
        params.flags[q] = count ? SLOT_WAITING : SLOT_EMPTY;
        if (count == 0) continue;  // begin may be the schedule's end, past the last problem
        piece_record *records = params.records + begin.unit.index + q;
        hopper_unit u = begin.unit;
        hopper_shape sh = hopper_problem_shape(&s.problems[u.problem]);
        for (int32_t i = 0; i < count; i++) {
            const int32_t m = s.problems[u.problem].m;
            const int32_t first_row = u.chunk * sh.base, rows = min(m - first_row, sh.base);
            piece_record r = {u.problem, u.slice, u.tile, u.chunk, i == 0 ? begin.kb : 0,
                              u.index == end.unit.index ? end.kb : sh.kblocks, rows, hopper_round_width(rows), 0, 0,
                              q + 1, q + 1, first_row,
                              s.prefix[u.problem].scratch_bytes + u.slice * sh.slice_scratch +
                                  (int64_t)first_row * sh.kblocks * TOKEN_ROW_BYTES};
            r.is_first = r.kb_begin == 0;
            r.is_complete = r.is_first && r.kb_end == sh.kblocks;
            if (r.is_first && !r.is_complete) {
                const hopper_pos last = {u, sh.kblocks - 1};
                const int64_t last_cost = hopper_pos_cost(&s, last);
                int32_t q_last = q;
                while (q_last + 1 < ctas && boundary_costs[q_last + 1] <= last_cost) q_last++;
                r.q_end = q_last + 1;
            }
            records[i] = r;
            // The next unit (hopper_unit_next), with the problem's shape recomputed only where the problem changes.
            u.index++;
            if (++u.chunk < sh.chunks) continue;
            u.chunk = 0;
            if (++u.tile < sh.tiles) continue;
            u.tile = 0;
            if (++u.slice < sh.slices) continue;
            u.slice = 0;
            if (i + 1 == count) break;
            do u.problem++;
            while (s.prefix[u.problem + 1].units == s.prefix[u.problem].units);  // skip problems without units
            sh = hopper_problem_shape(&s.problems[u.problem]);
        }
    }
}

// The pre-pass's shared memory, sized by the call (dynamic): the schedule's tables for `count` problems and `ctas`
// CTAs (at most NVFP4_STREAMK_MAX_GROUPS and NVFP4_STREAMK_MAX_CTAS), then each warp's staging of its 32 decoded
// rows. Few groups, little memory, more blocks per SM.
struct prepass_shared {
    hopper_prefix *prefix;    // [count + 1]
    int64_t *boundary_costs;  // [ctas + 1], the planning block's plan_pieces
    hopper_problem *problems; // [count]
    int32_t *row_prefix;      // [count + 1]
    uint8_t *staging;         // [PREPASS_THREADS][TOKEN_ROW_BYTES], 16-byte aligned
};

__host__ __device__ constexpr size_t prepass_table_bytes(int count, int ctas) {
    return sizeof(hopper_prefix) * (count + 1) + sizeof(int64_t) * (ctas + 1) + sizeof(hopper_problem) * count +
           sizeof(int32_t) * (count + 1);
}
__host__ __device__ constexpr size_t prepass_shared_bytes(int count, int ctas) {
    return (prepass_table_bytes(count, ctas) + 15) / 16 * 16 + (size_t)PREPASS_THREADS * TOKEN_ROW_BYTES;
}
static_assert(prepass_shared_bytes(MAX_PROBLEMS, MAX_CTAS) <= 227 * 1024, "the pre-pass fits an SM's shared memory");
static_assert(NVFP4_MOE_PREPASS_EXPERTS == PREPASS_THREADS, "the MoE pre-pass derives one expert a thread");

__device__ __forceinline__ prepass_shared carve_prepass_shared(uint8_t *base, int count, int ctas) {
    prepass_shared t;
    t.prefix = reinterpret_cast<hopper_prefix *>(base);
    t.boundary_costs = reinterpret_cast<int64_t *>(t.prefix + count + 1);
    t.problems = reinterpret_cast<hopper_problem *>(t.boundary_costs + ctas + 1);
    t.row_prefix = reinterpret_cast<int32_t *>(t.problems + count);
    t.staging = base + (prepass_table_bytes(count, ctas) + 15) / 16 * 16;
    return t;
}

// The decode of a pre-pass block, once the schedule's tables are in shared memory: k-block blockIdx.y of
// PREPASS_THREADS consecutive padded token rows of the call (every problem's slices' chunks, each chunk's rows up to
// its width), one row per thread: a search in shared memory and 32-bit arithmetic find the row. group(p) gives
// problem p's entry (its rows of a and their scales). Its scratch row is at byte `out` (-1: no row, or past its
// problem's K).
template <class GroupOf>
__device__ __forceinline__ void decode_token_rows(const streamk_params &params, const prepass_shared &t, int count,
                                                  GroupOf group) {
    const int32_t row = blockIdx.x * blockDim.x + threadIdx.x;
    long long out = -1;
    int32_t chunk_row = 0;
    uint4 chunks[8];
#pragma unroll
    for (int j = 0; j < 8; j++) chunks[j] = make_uint4(0, 0, 0, 0);  // rows past a chunk's tokens stay zeros
    if (row < t.row_prefix[count]) {
        int lo = 0, hi = count - 1;
        while (lo < hi) {  // the last problem whose rows begin at or before row (empty ones share the next's start)
            const int mid = (lo + hi + 1) / 2;
            if (t.row_prefix[mid] <= row) lo = mid;
            else hi = mid - 1;
        }
        const hopper_shape sh = hopper_problem_shape(&t.problems[lo]);
        const int32_t kb = blockIdx.y;
        if (kb < sh.kblocks) {
            const uint32_t local = row - t.row_prefix[lo], tile_width = (uint32_t)sh.tile_width;
            const uint32_t slice = local / tile_width, in_slice = local - slice * tile_width;
            const uint32_t chunk = min(in_slice / (uint32_t)sh.base, (uint32_t)sh.chunks - 1);
            chunk_row = in_slice - chunk * sh.base;
            const int32_t width = chunk == (uint32_t)sh.chunks - 1 ? sh.last_width : sh.base;
            // hopper_scratch_offset's layout, then the k-block and the row.
            out = t.prefix[lo].scratch_bytes + slice * sh.slice_scratch +
                  ((int64_t)chunk * sh.base * sh.kblocks + (int64_t)kb * width + chunk_row) * TOKEN_ROW_BYTES;
            const auto &g = group(lo);
            const int32_t chunk_rows = t.problems[lo].chunk_rows;
            if (chunk_row < hopper_chunk_rows(g.m, chunk_rows, chunk)) {
                const int token = hopper_chunk_first_row(g.m, chunk_rows, chunk) + chunk_row;
                const uint8_t *a = g.a + slice * g.a_batch_stride + (int64_t)token * g.a_row_stride + kb * KBLOCK_BYTES;
                const uint4 packed[2] = {__ldg(reinterpret_cast<const uint4 *>(a)),
                                         __ldg(reinterpret_cast<const uint4 *>(a) + 1)};
                const uint32_t scale_bytes = __ldg(reinterpret_cast<const uint32_t *>(
                    g.sfa + slice * g.sfa_batch_stride + sf_offset(token, kb, g.sfa_rowblock_stride, g.sfa_kblock_stride)));
                decode_row_block(packed, scale_bytes, chunks);
            }
        }
    }
    // Stored through the warp's staging: one thread's row is 8 stores to one line, so a warp's 16-byte stores
    // would each touch 32 lines; staged, each store instruction writes four whole rows (512 consecutive bytes where
    // the rows are consecutive, as they are within a chunk). Within a chunk a row's position is its padded index
    // modulo 8 (every chunk and problem starts on a multiple of 8), so 8 consecutive lanes' swizzled chunks fill
    // distinct banks.
    const int lane = threadIdx.x % 32;
    uint8_t *staging = t.staging + (threadIdx.x - lane) * TOKEN_ROW_BYTES;
#pragma unroll
    for (int j = 0; j < 8; j++)
        *reinterpret_cast<uint4 *>(staging + lane * TOKEN_ROW_BYTES + ((j ^ (chunk_row % 8)) * 16)) = chunks[j];
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int source = 4 * i + lane / 8, piece = lane % 8;  // row `source` of the warp, its 16-byte piece
        const long long destination = __shfl_sync(0xFFFFFFFFu, out, source);
        const uint4 v = *reinterpret_cast<const uint4 *>(staging + source * TOKEN_ROW_BYTES + piece * 16);
        if (destination >= 0) *reinterpret_cast<uint4 *>(params.scratch + destination + piece * 16) = v;
    }
}

__global__ void __launch_bounds__(PREPASS_THREADS)
    token_prepass_kernel(const __grid_constant__ streamk_params params) {
    // Every block has started: the main kernel may launch and run its prologue on SMs as this grid leaves them
    // (it waits for this grid's writes before reading any; launch_dependent_kernel).
    dependents_may_launch();
    // Launched as a dependent of the kernel before it (the MoE table kernel, which lets it launch at once; or any
    // other, which lets it launch when it exits): nothing in memory is touched before that kernel has finished.
    dependency_wait();
    extern __shared__ __align__(16) uint8_t dynamic_shared[];
    const int count = params.num_entries;
    const bool planning_block = blockIdx.x == gridDim.x - 1 && blockIdx.y == 0;
    const prepass_shared t = carve_prepass_shared(dynamic_shared, count, params.ctas);
    if (params.schedule_tables) {
        // The tables made on the device; the grid is sized by a bound, so blocks past the real rows leave at once.
        hopper_device_tables *made = params.schedule_tables;
        if (!planning_block && blockIdx.x * blockDim.x >= (unsigned)made->padded_rows) return;
        const hopper_prefix *prefix = hopper_device_tables_prefix(made);
        const hopper_problem *problems = hopper_device_tables_problems(made);
        const int32_t *row_prefix = hopper_device_tables_row_prefix(made);
        for (int p = threadIdx.x; p <= count; p += blockDim.x) {
            t.prefix[p] = prefix[p];
            t.row_prefix[p] = row_prefix[p];
            if (p < count) t.problems[p] = problems[p];
        }
        __syncthreads();
    } else {
        for (int p = threadIdx.x; p < count; p += blockDim.x) {
            const nvfp4_group_entry &g = entry_of(params, p);
            t.problems[p] = hopper_problem{g.m, g.n, g.k, g.l, params.chunk_rows};
        }
        __syncthreads();
        build_prefix(t.problems, t.prefix, t.row_prefix, count);
    }
    const hopper_schedule s = hopper_schedule_attach(t.problems, t.prefix, count, params.ctas);
    // The plan runs in a block of its own, past the decoded rows, so that no block does both: the grid's time is
    // then the longer of the plan and the decode, not their sum.
    if (planning_block) {
        plan_pieces(params, s, t.boundary_costs);
        return;
    }
    decode_token_rows(params, t, count, [&](int p) -> const nvfp4_group_entry & { return entry_of(params, p); });
}

// The MoE call of moe_prepass_kernel, carried where the by-value group table would be (an MoE call's table is in
// device memory).
static_assert(sizeof(nvfp4_moe_call) <= sizeof(streamk_params::entries), "the MoE call fits the table's place");
__device__ __forceinline__ const nvfp4_moe_call &moe_call_of(const streamk_params &params) {
    return *reinterpret_cast<const nvfp4_moe_call *>(params.entries);
}

// The pre-pass of an MoE-layout call (grouped_mm) of up to PREPASS_THREADS experts: as token_prepass_kernel, but
// every block first derives the call's layout from the expert end offsets itself (moe_layout.cuh, one expert per
// thread), so no table kernel runs before it: the call's first kernel decodes. The planning block also writes
// the group table that the main kernel reads (params.device_table). The grid is sized by a bound on the padded
// rows; blocks past the real ones leave once the layout says so.
__global__ void __launch_bounds__(PREPASS_THREADS) moe_prepass_kernel(const __grid_constant__ streamk_params params) {
    dependents_may_launch();
    // The kernel before it may write the offsets, or have freed the memory this call's workspace reuses.
    dependency_wait();
    extern __shared__ __align__(16) uint8_t dynamic_shared[];
    __shared__ round_totals<PREPASS_THREADS / MOE_WARP> rounds;
    __shared__ int64_t starts[PREPASS_THREADS], scale_rows[PREPASS_THREADS];
    const nvfp4_moe_call &call = moe_call_of(params);
    const int count = params.num_entries, e = threadIdx.x;
    const bool planning_block = blockIdx.x == gridDim.x - 1 && blockIdx.y == 0;
    const prepass_shared t = carve_prepass_shared(dynamic_shared, count, params.ctas);
    auto publish = [&](const moe_expert_layout &layout) {
        if (e >= count) return;
        t.problems[e] = layout.problem;
        t.prefix[e] = layout.before;
        t.row_prefix[e] = layout.rows_before;
        starts[e] = layout.start;
        scale_rows[e] = layout.scale_row;
        if (e == count - 1) {
            t.prefix[e + 1] = layout.total;
            t.row_prefix[e + 1] = layout.rows_total;
        }
        // The main kernel reads it after its wait for this whole grid.
        if (planning_block) const_cast<nvfp4_group_entry *>(params.device_table)[e] = moe_group_entry(call, e, layout);
    };
    // Up to a warp of experts (every benchmark spec), warp 0 derives the layout alone, with no barrier inside its
    // rounds, while the other warps wait at the barrier below; more experts take every thread.
    if (count <= MOE_WARP) {
        __shared__ round_totals<1> warp_rounds;  // never touched: one warp passes no totals
        if (e < MOE_WARP) publish(derive_moe_layout(call, params.ctas, true, warp_rounds));
    } else {
        publish(derive_moe_layout(call, params.ctas, true, rounds));
    }
    __syncthreads();
    if (!planning_block && blockIdx.x * blockDim.x >= (unsigned)t.row_prefix[count]) return;
    const hopper_schedule s = hopper_schedule_attach(t.problems, t.prefix, count, params.ctas);
    if (planning_block) {
        plan_pieces(params, s, t.boundary_costs);
        return;
    }
    decode_token_rows(params, t, count, [&](int p) {
        moe_expert_layout own;
        own.start = starts[p], own.rows = t.problems[p].m, own.scale_row = scale_rows[p], own.tile_start = 0;
        return moe_group_entry(call, p, own);
    });
}

// ---- Main kernel: the copier ------------------------------------------------------------------------------------

// A position in a ring of stages: the stage, and the parity of the phase its `full` barrier completes next. A
// producer waits for `empty` with the opposite parity, which a fresh barrier reports as complete: the first pass
// through the ring waits for nothing.
struct ring_cursor {
    uint32_t index, parity;
    __device__ __forceinline__ void advance(uint32_t size) {
        if (++index == size) {
            index = 0;
            parity ^= 1;
        }
    }
};

__device__ __forceinline__ void store_release(int32_t *flag, int32_t value) {
    asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(flag), "r"(value) : "memory");
}


// Warp-wide: the scheduler. It reads the CTA's piece records (the pre-pass's) and hands each piece to the copier
// and the consumers through a ring of descriptors, with the piece's weight tensor map retargeted and published to
// one of the CTA's map slots (tensormap.cp_fenceproxy is warp-wide).
__device__ __forceinline__ void run_scheduler(const streamk_params &params, shared_storage &shared, int lane) {
    const piece_range range = params.ranges[blockIdx.x];
    CUtensorMap *map_slots = params.weight_maps + (int64_t)blockIdx.x * MAP_SLOTS;
    // publish_tensor_map copies by an atomic exchange per word, which initcheck counts as a read of the slot, and
    // the workspace is fresh each call: each slot this CTA will use is written plainly once first (128 bytes).
    for (int s = 0; s < min(range.count, MAP_SLOTS); s++)
        reinterpret_cast<uint32_t *>(map_slots + s)[lane] = reinterpret_cast<const uint32_t *>(&params.weight_map)[lane];
    ring_cursor slot = {0, 0};
    for (int32_t index = 0; index <= range.count; index++, slot.advance(PIECE_SLOTS)) {
        // Slot reuse: every reader has taken the descriptor PIECE_SLOTS back. The consumers take one only after
        // finishing the piece before it, whose copies have therefore landed: so have those of the piece that last
        // used this map slot (MAP_SLOTS = PIECE_SLOTS + 1 back).
        if (lane == 0) barrier_wait(&shared.piece_empty[slot.index], slot.parity ^ 1);
        __syncwarp();
        piece_desc desc = {};  // width 0: the CTA's range is done
        if (index < range.count) {
            const piece_record r = params.records[range.first + index];
            const nvfp4_group_entry &g = entry_of(params, r.problem);
            CUtensorMap *map = &map_slots[index % MAP_SLOTS];
            if (lane == 0) {
                shared.weight_map = params.weight_map;
                retarget_tensor_map(&shared.weight_map, g.b + r.slice * g.b_batch_stride, g.k / 2, g.n,
                                    g.b_row_stride);
            }
            __syncwarp();
            publish_tensor_map(map, &shared.weight_map);
            desc = piece_desc{r.problem, r.slice, r.tile, r.chunk, r.kb_begin, r.kb_end, r.rows, r.width,
                              r.is_first, r.is_complete, r.q_begin, r.q_end, r.first_row};
            desc.n0 = r.tile * WEIGHT_ROWS;
            desc.tokens = params.scratch + r.scratch_offset;
            desc.sfb = g.sfb + r.slice * g.sfb_batch_stride +
                       (int64_t)(desc.n0 / NVFP4_SF_ATOM_ROWS) * g.sfb_rowblock_stride;
            desc.sfb_kblock_stride = g.sfb_kblock_stride;
            desc.weight_map = map;
        }
        if (lane == 0) {
            shared.pieces[slot.index] = desc;
            barrier_arrive(&shared.piece_full[slot.index]);  // release: the readers' wait orders their reads after it
        }
    }
}

// One thread: the copier. Per WEIGHT_GROUP k-blocks of a piece, one tensor copy of 128 weight rows (past K or
// past b's rows: zeros) and one bulk copy of their scale atoms; per k-block, one bulk copy of the chunk's decoded
// tokens into the token stage of its place in the weight stage. Every stage's `full` mbarrier completes when its bytes have landed; it is refilled once `empty` says
// all eight consumer warps are done with it. A few dozen instructions a k-block, all from a handful of registers:
// one thread issues them, and every clock it spends is one the consumers may wait.
__device__ __forceinline__ void run_copier(shared_storage &shared) {
    const uint64_t keep = l2_policy_evict_last(), stream = l2_policy_evict_first();
    ring_cursor slot = {0, 0}, weights = {0, 0};
    uint32_t token_parity = 0;  // every token stage completes one phase per weight stage
    for (;; slot.advance(PIECE_SLOTS)) {
        barrier_wait(&shared.piece_full[slot.index], slot.parity);
        const piece_desc piece = shared.pieces[slot.index];
        barrier_arrive(&shared.piece_empty[slot.index]);
        if (piece.width == 0) return;
        acquire_tensor_map(piece.weight_map);  // published by the scheduler (release, then the piece's barrier)
        const uint32_t token_bytes = piece.width * TOKEN_ROW_BYTES;
        for (int kb = piece.kb_begin; kb < piece.kb_end; kb += WEIGHT_GROUP, token_parity ^= 1) {
            const int kblocks = min(WEIGHT_GROUP, piece.kb_end - kb);
            {
                barrier_wait(&shared.weight_empty[weights.index], weights.parity ^ 1);
                weight_stage &w = shared.weights[weights.index];
                uint64_t *full = &shared.weight_full[weights.index];
                barrier_arrive_expect_bytes(full, sizeof(w.weights) + kblocks * NVFP4_SF_ATOM_BYTES);
                tensor_copy_hinted(w.weights, piece.weight_map, kb * KBLOCK_BYTES, piece.n0, full, stream);
                if (piece.sfb_kblock_stride == NVFP4_SF_ATOM_BYTES) {  // the blocked layout's atoms, one after another
                    bulk_copy_hinted(w.scales[0], piece.sfb + kb * NVFP4_SF_ATOM_BYTES, kblocks * NVFP4_SF_ATOM_BYTES,
                                     full, stream);
                } else {
                    for (int j = 0; j < kblocks; j++)
                        bulk_copy_hinted(w.scales[j], piece.sfb + (kb + j) * piece.sfb_kblock_stride,
                                         NVFP4_SF_ATOM_BYTES, full, stream);
                }
                weights.advance(WEIGHT_STAGES);
            }
            // K-block j of the weight stage goes to token stage j; a stage past the piece's last k-block completes
            // its phase empty, so that every token stage stays in step with the weight ring.
            for (int j = 0; j < WEIGHT_GROUP; j++) {
                barrier_wait(&shared.token_empty[j], token_parity ^ 1);
                if (j < kblocks) {
                    barrier_arrive_expect_bytes(&shared.token_full[j], token_bytes);
                    bulk_copy_hinted(shared.tokens[j], piece.tokens + (int64_t)(kb + j) * token_bytes, token_bytes,
                                     &shared.token_full[j], keep);
                } else {
                    barrier_arrive(&shared.token_full[j]);
                }
            }
        }
    }
}

// ---- Main kernel: the consumers ----------------------------------------------------------------------------------

// Where a consumer thread is in the two rings, carried across pieces.
struct consumer_state {
    ring_cursor weights;
    uint32_t token_parity;  // the token stages' phase: one per weight stage (the copier's token_parity)
};

// The packed words of the thread's scale group in rows r0 and r0 + 8 of k-block j of a weight stage, and their
// two scales (0 for rows past the end of b, which turns whatever the stage holds there into zeros: a decoded e2m1
// is never NaN).
// The thread's packed words and scales of k-block j of a weight stage: rows r0 and r0 + 8, its scale group.
struct weight_words {
    uint32_t words[2][2];
    __half2 scale_r0, scale_r1;
};

// Where the thread reads its weights in every stage, fixed for a piece.
struct weight_reader {
    weight_lane lane;
    uint32_t scale_r0, scale_r8;  // offsets of its two scale bytes in an atom
    uint32_t scale_keep;          // 0 for a row past the end of b: whatever the stage holds there becomes zeros
                                  // (a decoded e2m1 is never NaN; a scale byte past b's rows may be)

    __device__ __forceinline__ weight_reader(int r0, int t, int weight_rows)
        : lane(r0, t), scale_r0(sf_atom_offset(r0) + t), scale_r8(sf_atom_offset(r0 + 8) + t),
          scale_keep((r0 < weight_rows ? 0x00FFu : 0u) | (r0 + 8 < weight_rows ? 0xFF00u : 0u)) {}

    __device__ __forceinline__ void load(const weight_stage &w, uint32_t j, weight_words &into) const {
        const uint8_t *bytes = w.weights + lane.offset(j);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint2 v = *reinterpret_cast<const uint2 *>(bytes + h * EIGHT_ROWS_BYTES);
            into.words[h][0] = v.x;
            into.words[h][1] = v.y;
        }
        const uint32_t scales = (w.scales[j][scale_r0] | (uint32_t(w.scales[j][scale_r8]) << 8)) & scale_keep;
        e4m3x2_to_row_scales(scales, into.scale_r0, into.scale_r1);
    }
};

// A k16 step further along a token tile: 32 bytes of each row, in the descriptor's 16-byte units. A step adds to
// the descriptor's low half (its start address) alone; with the 64-bit descriptor ptxas spent ~2 more instructions
// a step on the carry and register-pair moves.
constexpr uint32_t STEP_DESCRIPTOR_DELTA = 32 >> 4;
constexpr uint32_t TOKEN_STAGE_DESCRIPTOR_STEP = (MAX_WIDTH * TOKEN_ROW_BYTES) >> 4;  // one token stage further

template <int N>
__device__ __forceinline__ void mma_step(float (&acc)[N / 2], const uint32_t (&frag)[4], uint64_t tile, int step) {
    wgmma_fence();
    wgmma_rs<N>::mma(acc, frag, (uint32_t)tile + step * STEP_DESCRIPTOR_DELTA, (uint32_t)(tile >> 32));
    wgmma_commit();
}

__device__ __forceinline__ void sync_consumers() { asm volatile("bar.sync 1, %0;\n" ::"n"(CONSUMER_THREADS) : "memory"); }

__device__ __forceinline__ void sync_consumer(int consumer) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(2 + consumer) : "memory");
}

// One arrival per warp on a ring's `empty` barrier.
__device__ __forceinline__ void release(uint64_t *empty, int lane) {
    __syncwarp();
    if (lane == 0) barrier_arrive(empty);
}

__device__ __forceinline__ int32_t load_acquire(const int32_t *flag) {
    int32_t value;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(value) : "l"(flag) : "memory");
    return value;
}

// Two outputs rounded to the output type and packed for a matrix store, lo in the low half.
template <bool BF16>
__device__ __forceinline__ uint32_t pack_outputs(float lo, float hi) {
    if (BF16) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t *>(&v);
    }
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&v);
}

// Stages epilogue pass j of a consumer warp (EPILOGUE_TOKENS tokens of its 16 weight rows), scaled and rounded:
// accumulator d[4i + e] is weight row lane / 4 + 8 (e / 2), token 8i + 2 (lane % 4) + e % 2, so for 16 tokens the
// warp holds four 8x8 matrices in the mma layout (weight rows as rows), two outputs a register; one transposing
// matrix store lays them out token by token. Half the conversions and an eighth of the stores of storing each
// output, and the output type is chosen once a pass instead of at every value.
template <int N, bool BF16>
__device__ __forceinline__ void stage_outputs(const float (&acc)[N / 2], int j, float scale, uint32_t lane_address) {
#pragma unroll
    for (int i = 0; i < EPILOGUE_TOKENS / 8 && 8 * (EPILOGUE_TOKENS / 8 * j + i) < N; i += 2) {  // N: 16 a step
        const int a = j * EPILOGUE_TOKENS / 2 + 4 * i;
        store_matrices_transposed(lane_address + i * 8 * EPILOGUE_PITCH,
                                  pack_outputs<BF16>(acc[a] * scale, acc[a + 1] * scale),
                                  pack_outputs<BF16>(acc[a + 2] * scale, acc[a + 3] * scale),
                                  pack_outputs<BF16>(acc[a + 4] * scale, acc[a + 5] * scale),
                                  pack_outputs<BF16>(acc[a + 6] * scale, acc[a + 7] * scale));
    }
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
    weight_words held[2];  // the current k-block's and the next one's, by the k-block's parity in its stage
    uint32_t frag[2][4];

    // Weight stage by weight stage: each piece starts a stage, and every stage but a piece's last holds
    // WEIGHT_GROUP k-blocks; k-block j of a weight stage reads token stage j (the copier completes the token stages
    // past a piece's last k-block empty, and they are released at once). A weight stage is released once its last
    // k-block's words are in registers; a token stage once the wgmma that read it have finished. The stages with another after
    // them run first, in a loop where the next k-block's words always exist: with the loop over a stage unrolled,
    // where they come from is known at compile time and nothing in a k16 step is conditional, so no convergence
    // barrier sits in the step. The piece's last stage (1 to WEIGHT_GROUP k-blocks) runs after it.
    static_assert(TOKEN_STAGES == WEIGHT_GROUP, "k-block j of a weight stage reads token stage j");
    ring_cursor weights = state.weights;
    uint32_t token_parity = state.token_parity;
    const weight_reader reader(r0, t, weight_rows);
    // Token stage i's descriptor is stage 0's plus i stages in the start address (its low bits, in 16-byte units:
    // shared addresses stay far below the field's 2^18 bytes, so nothing carries out of it).
    const uint64_t token_tile0 = swizzled_tile_descriptor(shared.tokens[0]);
    barrier_wait(&shared.weight_full[weights.index], weights.parity);
    reader.load(shared.weights[weights.index], 0, held[0]);
    weight_fragment(0, held[0].words, held[0].scale_r0, held[0].scale_r1, frag[0]);
    // K-block j (0 .. WEIGHT_GROUP - 1) of a weight stage: issue step s on one fragment set; once step s - 1 has
    // finished, decode step s + 1 into its set. Step 0's wait also frees the token stage of the k-block before
    // (j - 1, or the last of the stage before; none before a piece's first k-block).
    auto run_kblock = [&](const weight_words &now, int j, bool has_previous) {
        const uint64_t tile = token_tile0 + j * TOKEN_STAGE_DESCRIPTOR_STEP;
        mma_step<N>(acc, frag[0], tile, 0);
        wgmma_wait<1>();
        if (has_previous) release(&shared.token_empty[(j + WEIGHT_GROUP - 1) % WEIGHT_GROUP], lane);
        weight_fragment(1, now.words, now.scale_r0, now.scale_r1, frag[1]);
        mma_step<N>(acc, frag[1], tile, 1);
        wgmma_wait<1>();
        weight_fragment(2, now.words, now.scale_r0, now.scale_r1, frag[0]);
        mma_step<N>(acc, frag[0], tile, 2);
        wgmma_wait<1>();
        weight_fragment(3, now.words, now.scale_r0, now.scale_r1, frag[1]);
        mma_step<N>(acc, frag[1], tile, 3);
        wgmma_wait<1>();
    };
    int stage_kb = 0;
    for (; stage_kb + WEIGHT_GROUP < kblocks; stage_kb += WEIGHT_GROUP) {
#pragma unroll
        for (int j = 0; j < WEIGHT_GROUP; j++) {
            weight_words &now = held[j % 2], &next = held[(j + 1) % 2];
            barrier_wait(&shared.token_full[j], token_parity);
            if (j + 1 < WEIGHT_GROUP) {
                reader.load(shared.weights[weights.index], j + 1, next);
            } else {  // the stage's last k-block: its words are in registers; the next stage's first follows
                release(&shared.weight_empty[weights.index], lane);
                weights.advance(WEIGHT_STAGES);
                barrier_wait(&shared.weight_full[weights.index], weights.parity);
                reader.load(shared.weights[weights.index], 0, next);
            }
            run_kblock(now, j, j > 0 || stage_kb > 0);
            weight_fragment(0, next.words, next.scale_r0, next.scale_r1, frag[0]);
        }
        token_parity ^= 1;
    }
    const int in_stage = kblocks - stage_kb;  // 1 .. WEIGHT_GROUP
#pragma unroll
    for (int j = 0; j < WEIGHT_GROUP; j++) {
        barrier_wait(&shared.token_full[j], token_parity);
        if (j >= in_stage) {  // past the piece's last k-block: the copier completed this stage empty
            release(&shared.token_empty[j], lane);
            continue;
        }
        weight_words &now = held[j % 2], &next = held[(j + 1) % 2];
        const bool more = j + 1 < in_stage;
        if (more) reader.load(shared.weights[weights.index], j + 1, next);
        else release(&shared.weight_empty[weights.index], lane);  // the piece's last k-block
        run_kblock(now, j, j > 0 || stage_kb > 0);
        if (more) weight_fragment(0, next.words, next.scale_r0, next.scale_r1, frag[0]);
    }
    weights.advance(WEIGHT_STAGES);
    wgmma_wait<0>();
    release(&shared.token_empty[in_stage - 1], lane);
    state.token_parity = token_parity ^ 1;
    state.weights = weights;

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
    const int token0 = piece.first_row;
    // The accumulators carry 2^-14 (ACCUMULATOR_SCALE_2); times the entry's alpha in the same product, so the
    // value is rounded once in fp32, then once to the output type.
    const float output_scale = params.alpha ? ACCUMULATOR_SCALE_2 * params.alpha[piece.problem] : ACCUMULATOR_SCALE_2;
    const bool bf16 = params.out_bf16 != 0;
    const int col0 = n0 + consumer * CONSUMER_ROWS;
    const bool wide_stores = g.c_row_stride % 16 == 0 && reinterpret_cast<uintptr_t>(c) % 16 == 0;
    // Lane l's row of each matrix store (stage_outputs): token 8 (l / 16) + l % 8 of the 16 staged at once, at
    // weight row 8 ((l / 8) % 2) of the warp's 16.
    const uint32_t lane_address = shared_address(staging) + ((lane / 16) * 8 + lane % 8) * EPILOGUE_PITCH +
                                  (warp * 16 + (lane / 8) % 2 * 8) * 2;
#pragma unroll
    for (int j = 0; j < (N + EPILOGUE_TOKENS - 1) / EPILOGUE_TOKENS; j++) {
        const int tokens = min(piece.rows - j * EPILOGUE_TOKENS, EPILOGUE_TOKENS);
        if (tokens <= 0) break;
        if (bf16) stage_outputs<N, true>(acc, j, output_scale, lane_address);
        else stage_outputs<N, false>(acc, j, output_scale, lane_address);
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

// Widths 16 .. 240 in steps of 16: one loop compiled per width.
#define NVFP4_WIDTH_CASE(N)                                                                      \
    case N:                                                                                      \
        consumer_piece<N>(params, piece, shared, consumer, thread, state);          \
        break;

__device__ __forceinline__ void run_consumer(const streamk_params &params, shared_storage &shared, int consumer,
                                             int thread) {
    consumer_state state = {{0, 0}, 0};
    for (ring_cursor slot = {0, 0};; slot.advance(PIECE_SLOTS)) {
        barrier_wait(&shared.piece_full[slot.index], slot.parity);
        const piece_desc piece = shared.pieces[slot.index];
        __syncwarp();
        if (thread % 32 == 0) barrier_arrive(&shared.piece_empty[slot.index]);
        // Warp-uniform by construction; the shuffle lets the compiler see it, so that the wgmma inside each case
        // stay asynchronous.
        const int width = __shfl_sync(0xFFFFFFFFu, piece.width, 0);
        if (width == 0) return;
        switch (width) {
            NVFP4_WIDTH_CASE(16) NVFP4_WIDTH_CASE(32) NVFP4_WIDTH_CASE(48) NVFP4_WIDTH_CASE(64)
            NVFP4_WIDTH_CASE(80) NVFP4_WIDTH_CASE(96) NVFP4_WIDTH_CASE(112) NVFP4_WIDTH_CASE(128)
            NVFP4_WIDTH_CASE(144) NVFP4_WIDTH_CASE(160) NVFP4_WIDTH_CASE(176) NVFP4_WIDTH_CASE(192)
            NVFP4_WIDTH_CASE(208) NVFP4_WIDTH_CASE(224) NVFP4_WIDTH_CASE(240)
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
        for (int i = 0; i < TOKEN_STAGES; i++) {
            barrier_init(&shared.token_full[i], 1);  // the copier's expect_tx arrival
            barrier_init(&shared.token_empty[i], CONSUMER_WARPS);
        }
        for (int i = 0; i < WEIGHT_STAGES; i++) {
            barrier_init(&shared.weight_full[i], 1);  // the copier's expect_tx arrival
            barrier_init(&shared.weight_empty[i], CONSUMER_WARPS);
        }
        for (int i = 0; i < PIECE_SLOTS; i++) {
            barrier_init(&shared.piece_full[i], 1);
            barrier_init(&shared.piece_empty[i], CONSUMER_WARPS + 1);  // and the copier
        }
        fence_barrier_init();
    }
    __syncthreads();
    dependency_wait();  // the pre-pass's scratch, plan and flags
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, tid / 128, 0);
    if (warpgroup == 0) {
        setmaxnreg_dec<PRODUCER_REGISTERS>();
        if (tid < 32) run_scheduler(params, shared, tid); else if (tid == 32) {
            run_copier(shared);
        }
    } else {
        setmaxnreg_inc<CONSUMER_REGISTERS>();
        run_consumer(params, shared, warpgroup - 1, tid % 128);
    }
}

}  // namespace

// ---- Launch -----------------------------------------------------------------------------------------------------

namespace {

// The call's workspace, one stream-ordered allocation: the scratch first (1024-byte aligned for the swizzle
// atoms its copies land as), then the partial slots, the flags, the weight maps, and the pre-pass's plan: the
// boundaries, each CTA's piece range and the piece records.
struct workspace_layout {
    size_t partials, flags, weight_maps, boundaries, ranges, records, bytes;
};

workspace_layout layout_for(const nvfp4_launch_shape &shape) {
    auto align = [](size_t v) { return (v + 1023) / 1024 * 1024; };
    const size_t ctas = (size_t)shape.grid;
    workspace_layout w;
    w.partials = align((size_t)shape.scratch_bytes);
    w.flags = align(w.partials + ctas * PARTIAL_FLOATS * sizeof(float));
    w.weight_maps = align(w.flags + ctas * sizeof(int32_t));
    w.boundaries = align(w.weight_maps + ctas * MAP_SLOTS * sizeof(CUtensorMap));
    w.ranges = align(w.boundaries + (ctas + 1) * sizeof(hopper_pos));
    w.records = align(w.ranges + ctas * sizeof(piece_range));
    w.bytes = w.records + ((size_t)shape.schedule_units + ctas) * sizeof(piece_record);
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

// The tensor map every piece's weight map starts from: bytes (uint8), 2 dimensions, boxes of 128 rows x 128 bytes
// in the 128-byte swizzle, zeros past the ends. The copier replaces address, sizes and stride per piece
// (retarget_tensor_map), so one made on the host at first use serves every call. Null if the driver cannot make it
// (cuTensorMapEncodeTiled comes from the driver through the runtime, so nothing links libcuda).
bool make_weight_map_template(CUtensorMap *tensor_map) {
    void *entry = driver_entry_point("cuTensorMapEncodeTiled");
    if (!entry) return false;
    static __align__(16) uint8_t placeholder[WEIGHT_ROW_BYTES];  // any 16-byte aligned address; replaced per piece
    const cuuint64_t dims[2] = {WEIGHT_ROW_BYTES, WEIGHT_ROWS}, strides[1] = {WEIGHT_ROW_BYTES};
    const cuuint32_t box[2] = {WEIGHT_ROW_BYTES, WEIGHT_ROWS}, element_strides[2] = {1, 1};
    return reinterpret_cast<encode_tiled_fn>(entry)(tensor_map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, placeholder, dims,
                                                    strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Made once per process (a function-local static: thread-safe initialisation), on the first launch.
const CUtensorMap *weight_map_template() {
    static CUtensorMap tensor_map;
    static const bool made = make_weight_map_template(&tensor_map);
    return made ? &tensor_map : nullptr;
}

cudaError_t launch_streamk(const nvfp4_group_entry *host_entries, const nvfp4_group_entry *device_table,
                           int32_t num_entries, const nvfp4_launch_shape &shape, cudaStream_t stream) {
    static bool configured[NVFP4_MAX_DEVICES];
    static CUfunction prepass_handles[NVFP4_MAX_DEVICES], moe_prepass_handles[NVFP4_MAX_DEVICES],
        gemm_handles[NVFP4_MAX_DEVICES];
    if (shape.moe_call && (shape.moe_call->experts > NVFP4_MOE_PREPASS_EXPERTS || !device_table))
        return cudaErrorInvalidValue;
    if (!configured[shape.device]) {
        cudaError_t failed = cudaFuncSetAttribute(streamk_gemm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  (int)SHARED_BYTES);
        if (failed == cudaSuccess)  // the pre-pass's largest call: the most groups and CTAs
            failed = cudaFuncSetAttribute(token_prepass_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)prepass_shared_bytes(MAX_PROBLEMS, MAX_CTAS));
        if (failed == cudaSuccess)
            failed = cudaFuncSetAttribute(moe_prepass_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)prepass_shared_bytes(NVFP4_MOE_PREPASS_EXPERTS, MAX_CTAS));
        if (failed != cudaSuccess) return failed;
        configured[shape.device] = true;
    }
    const CUtensorMap *weight_map = weight_map_template();
    if (!weight_map) return cudaErrorNotSupported;
    streamk_params params;  // entries past those copied stay unwritten: never read
    params.device_table = device_table;
    params.num_entries = num_entries;
    params.chunk_rows = shape.chunk_rows;
    params.schedule_tables = static_cast<hopper_device_tables *>(const_cast<void *>(shape.schedule_tables));
    params.out_bf16 = shape.out_bf16;
    params.alpha = shape.alpha;
    if (shape.moe_call) memcpy(params.entries, shape.moe_call, sizeof(nvfp4_moe_call));
    else if (!device_table) memcpy(params.entries, host_entries, sizeof(nvfp4_group_entry) * (size_t)num_entries);
    const int ctas = shape.grid;
    const workspace_layout w = layout_for(shape);
    cudaMemPool_t pool;
    cudaError_t failed = workspace_pool(shape.device, &pool);
    if (failed != cudaSuccess) return failed;
    uint8_t *workspace;
    failed = cudaMallocFromPoolAsync(reinterpret_cast<void **>(&workspace), w.bytes, pool, stream);
    if (failed != cudaSuccess) return failed;
    params.scratch = workspace;
    params.partials = reinterpret_cast<float *>(workspace + w.partials);
    params.flags = reinterpret_cast<int32_t *>(workspace + w.flags);
    params.boundaries = reinterpret_cast<hopper_pos *>(workspace + w.boundaries);
    params.ranges = reinterpret_cast<piece_range *>(workspace + w.ranges);
    params.records = reinterpret_cast<piece_record *>(workspace + w.records);
    params.weight_maps = reinterpret_cast<CUtensorMap *>(workspace + w.weight_maps);
    params.weight_map = *weight_map;
    params.ctas = ctas;
    // At least one block: block 0 plans the pieces even when there are no tokens to decode.
    // One block per PREPASS_THREADS padded token rows and 64-K block, plus a column whose block (x, 0) plans the
    // pieces (the others of that column find no rows and leave).
    const dim3 prepass_grid((unsigned)((shape.token_rows + PREPASS_THREADS - 1) / PREPASS_THREADS + 1),
                            (unsigned)shape.max_kblocks);
    if (shape.moe_call)
        failed = launch_dependent_kernel(moe_prepass_kernel, moe_prepass_handles, shape.device, prepass_grid,
                                         PREPASS_THREADS, (int)prepass_shared_bytes(num_entries, ctas), stream, params);
    else
        failed = launch_dependent_kernel(token_prepass_kernel, prepass_handles, shape.device, prepass_grid,
                                         PREPASS_THREADS, (int)prepass_shared_bytes(num_entries, ctas), stream, params);
    if (failed == cudaSuccess)
        failed = launch_dependent_kernel(streamk_gemm_kernel, gemm_handles, shape.device, ctas, THREADS,
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
