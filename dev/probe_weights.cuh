// probe_weights.cuh: what the probes that hand decoded weight rows to wgmma through shared memory share
// (split_roles_probe.cu, small_m_probe.cu): the 128-byte swizzle of a 128-byte row, the decode of one weight row's
// 64-K block into a swizzled stage, the decoders' side of the ring of decoded stages and the multipliers' release
// of a stage, random packed weights over every e2m1 code and the e4m3 range, and the float64 check of an
// accumulator against the exact dot product.
#pragma once

#include <stdint.h>
#include <stdlib.h>

#include <cmath>
#include <vector>

#include "probe_host.h"
#include "sm90_ptx.cuh"
#include "weight_fragments.cuh"

// Byte offset of 16-byte chunk `chunk` of a 128-byte row under the 128-byte swizzle.
__host__ __device__ constexpr int swizzled(int row, int chunk) { return row * 128 + ((chunk ^ (row % 8)) * 16); }

// Thread `row`: weight row `row` of 64-K block kb into `stage` (decode_row_block, the token pre-pass's decode, as
// 8 swizzled 16-byte stores). The packed bytes are [stored block][ROWS][32], the scales [stored block][ROWS][4];
// block kb is stored block kb % STORED_BLOCKS.
template <int ROWS, int STORED_BLOCKS>
__device__ __forceinline__ void decode_row_into(uint8_t *stage, const uint8_t *packed, const uint8_t *scales,
                                                int row, int kb) {
    const int stored = kb % STORED_BLOCKS;
    const uint4 *source = reinterpret_cast<const uint4 *>(packed + (stored * ROWS + row) * 32);
    const uint4 words[2] = {source[0], source[1]};
    const uint32_t scale_bytes = *reinterpret_cast<const uint32_t *>(scales + (stored * ROWS + row) * 4);
    uint4 chunks[8];
    decode_row_block(words, scale_bytes, chunks);
#pragma unroll
    for (int j = 0; j < 8; j++) *reinterpret_cast<uint4 *>(stage + swizzled(row, j)) = chunks[j];
}

// The decoders' loop over a ring of STAGES decoded stages of STAGE_BYTES: thread `row` decodes its row of each
// 64-K block into the next stage, after the multipliers freed it (`empty`), and marks it decoded (`full`, one
// arrival per warp). HANDSHAKE false: no barriers (timing only); FENCE false: no proxy fence before the arrival
// (timing only; wgmma may then read stale bytes).
template <int ROWS, int STORED_BLOCKS, int STAGES, int STAGE_BYTES, bool HANDSHAKE, bool FENCE>
__device__ __forceinline__ void decoder_ring_loop(uint8_t *stages, const uint8_t *packed, const uint8_t *scales,
                                                  uint64_t *full, uint64_t *empty, int row, int kblocks) {
    uint32_t parity = 0;
    for (int kb = 0; kb < kblocks; kb++) {
        const int stage = kb % STAGES;
        if (HANDSHAKE) barrier_wait(&empty[stage], parity ^ 1);  // a fresh barrier's last phase counts as done
        decode_row_into<ROWS, STORED_BLOCKS>(stages + stage * STAGE_BYTES, packed, scales, row, kb);
        if (HANDSHAKE) {
            if (FENCE) fence_shared_for_async();  // the stores, before wgmma reads them through the async proxy
            __syncwarp();
            if (row % 32 == 0) barrier_arrive(&full[stage]);
        }
        if (stage == STAGES - 1) parity ^= 1;
    }
}

// A multiplier warp, once block kb's wgmma are issued and block kb - 1's have finished (wgmma_wait<1>): frees
// block kb - 1's stage (one arrival per warp).
template <int STAGES>
__device__ __forceinline__ void release_previous_stage(uint64_t *empty, int kb, int lane) {
    if (kb == 0) return;
    __syncwarp();
    if (lane == 0) barrier_arrive(&empty[(kb - 1) % STAGES]);
}

// Random weights for `blocks` stored 64-K blocks of `rows` rows: every e2m1 code, e4m3 scale codes 1 .. 0x76
// (subnormal to 240), drawn with rand() (codes first, then scales).
struct probe_weights {
    int rows, blocks;
    std::vector<int> code;   // [block][row][k of 64]
    std::vector<int> scale;  // [block][row][group of 4]

    probe_weights(int rows_, int blocks_)
        : rows(rows_), blocks(blocks_), code(blocks_ * rows_ * 64), scale(blocks_ * rows_ * 4) {
        for (auto &c : code) c = rand() & 15;
        for (auto &s : scale) s = 1 + rand() % 0x76;
    }

    // The packed bytes ([block][row][32], element 2i in the low nibble of byte i) and the scale bytes
    // ([block][row][4]) as the probes' kernels read them.
    void write(uint8_t *packed, uint8_t *scales) const {
        for (int i = 0; i < blocks * rows; i++) {
            for (int k = 0; k < 64; k += 2) packed[i * 32 + k / 2] = (uint8_t)(code[i * 64 + k] | (code[i * 64 + k + 1] << 4));
            for (int g = 0; g < 4; g++) scales[i * 4 + g] = (uint8_t)scale[i * 4 + g];
        }
    }

    // Weight row `row`'s value at original k of 64-K block kb, as the decode yields it: e2m1 x e4m3 x 2^-7.
    double value(int kb, int row, int k) const {
        const int i = (kb % blocks) * rows + row;
        return e2m1_value(code[i * 64 + k]) * e4m3_value(scale[i * 4 + k / 16]) / 128.0;
    }

    // |got - exact| / sum |terms| for weight row `row` against a token over `kblocks` 64-K blocks, where
    // token(kb, p) is the token's value at position p of block kb (K in the order of weight_k_of_position);
    // infinite for a NaN.
    template <typename Token>
    double relative_error(float got, int row, int kblocks, Token token) const {
        double sum = 0, magnitude = 0;
        for (int kb = 0; kb < kblocks; kb++)
            for (int p = 0; p < 64; p++) {
                const double term = value(kb, row, weight_k_of_position(p)) * token(kb, p);
                sum += term, magnitude += std::fabs(term);
            }
        return std::isnan(got) ? INFINITY : std::fabs(got - sum) / (magnitude + 1e-30);
    }
};
