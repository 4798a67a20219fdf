// weight_fragments.cuh: packed e2m1 weights decoded straight into wgmma's A fragments, one k16 step at a time,
// and the order of K that this imposes on the other operand.
//
// Layout of the work: a warpgroup multiplies 64 weight rows; lane l of warp w holds rows r0 = 16w + l / 4 and
// r1 = r0 + 8, and quad lane t = l % 4. Per 64-K block, lane t reads the 8 packed bytes of one scale group
// (original k in [16t, 16t + 16)) of each of its two rows: one 16-element group needs one scale, and the
// 8 bytes are contiguous in the operand, so a thread never gathers. Those 16 values feed its fragment slots
// of the block's 4 k16 steps: step s takes the odd (s even) or even (s odd) nibbles of word s / 2 (bytes
// 4 * (s / 2) .. + 3). The sum over k does not care in which order k runs, as long as both operands use the
// same order: weight_k_of_position says which original k sits at each position of the block, and the token
// operand is written in that order.
//
// Exactness: a nibble's sign and 3 magnitude bits placed at fp16 bits 15 and 11..9 give the e2m1 value times
// 2^-14 (code 1, 0.5, becomes the subnormal 2^-15). One HMUL2 by the scale times 2^7 (<= 448 * 128 = 57344,
// an exact fp16) gives value * scale * 2^-7: at most 6 significant bits, a multiple of 2^-17 below 21, so an
// exact fp16. Each operand carries 2^-7; the epilogue removes the 2^-14 of a product.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

constexpr int FRAGMENT_SCALE_LOG2 = -7;  // each decoded operand is value * scale * 2^FRAGMENT_SCALE_LOG2

// Two e4m3 scale bytes (low byte: row r0, high byte: row r1) to fp16 scale * 2^7 for each row, as half2 pairs
// (s0, s0) and (s1, s1) ready for HMUL2. The convert is exact for every e4m3 value (e4m3 fits in fp16) and
// keeps NaN codes NaN; the multiply by 2^7 is exact since 448 * 2^7 fits fp16.
__device__ __forceinline__ void e4m3x2_to_row_scales(uint32_t two_bytes, __half2 &scale_r0, __half2 &scale_r1) {
    uint32_t pair;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;\n" : "=r"(pair) : "h"(static_cast<uint16_t>(two_bytes)));
    const __half2 scaled = __hmul2(*reinterpret_cast<const __half2 *>(&pair), __half2half2(__ushort_as_half(0x5800u)));
    scale_r0 = __low2half2(scaled);
    scale_r1 = __high2half2(scaled);
}

// The 4 odd nibbles (elements 1, 3, 5, 7) of a packed word as fp16 high bytes: byte i = element 2i + 1 * 2^-14.
__device__ __forceinline__ uint32_t odd_nibble_bytes(uint32_t word) {
    return (word & 0x80808080u) | ((word >> 3) & 0x0E0E0E0Eu);
}

// The 4 even nibbles (elements 0, 2, 4, 6): shifted up by one nibble, they sit where the odd ones did.
__device__ __forceinline__ uint32_t even_nibble_bytes(uint32_t word) { return odd_nibble_bytes(word << 4); }

// Four fp16 high bytes to two half2, each times its row's scale: bytes 1 and 3 (one AND) for fragment slots
// 2t, 2t+1, bytes 0 and 2 (one byte permute against zero) for slots 2t+8, 2t+9.
__device__ __forceinline__ void nibble_bytes_to_pairs(uint32_t bytes, __half2 scale, uint32_t &slots_low,
                                                      uint32_t &slots_high) {
    uint32_t hi = bytes & 0xFF00FF00u, lo = __byte_perm(bytes, 0u, 0x2404u);
    const __half2 a = __hmul2(*reinterpret_cast<const __half2 *>(&hi), scale);
    const __half2 b = __hmul2(*reinterpret_cast<const __half2 *>(&lo), scale);
    slots_low = *reinterpret_cast<const uint32_t *>(&a);
    slots_high = *reinterpret_cast<const uint32_t *>(&b);
}

// The A fragment of k16 step `step` (0..3, a compile-time constant once unrolled) of a 64-K block, from the
// block's packed words of rows r0 and r1 (words[row][0]: elements 0..7 of the lane's group, [1]: 8..15).
// Fragment registers: {r0, slots 2t, 2t+1}, {r1, 2t, 2t+1}, {r0, 2t+8, 2t+9}, {r1, 2t+8, 2t+9}.
__device__ __forceinline__ void weight_fragment(int step, const uint32_t (&words)[2][2], __half2 scale_r0,
                                                __half2 scale_r1, uint32_t (&frag)[4]) {
    const uint32_t w0 = words[0][step / 2], w1 = words[1][step / 2];
    const uint32_t b0 = step % 2 == 0 ? odd_nibble_bytes(w0) : even_nibble_bytes(w0);
    const uint32_t b1 = step % 2 == 0 ? odd_nibble_bytes(w1) : even_nibble_bytes(w1);
    nibble_bytes_to_pairs(b0, scale_r0, frag[0], frag[2]);
    nibble_bytes_to_pairs(b1, scale_r1, frag[1], frag[3]);
}

// One row's 64-K block (32 packed bytes, 4 scale bytes) as 128 bytes of fp16 in position order: position
// 16s + 2t + e holds the value weight_k_of_position puts there, i.e. the same words, nibbles and pairs that
// weight_fragment decodes for quad lane t and step s. Chunk j of the result holds positions 8j .. 8j + 7.
// The token pre-pass writes tokens this way (hopper_streamk.cu); a weight tile for wgmma with A from shared
// memory would be written the same way.
__device__ __forceinline__ void decode_row_block(const uint4 (&packed)[2], uint32_t scale_bytes, uint4 (&chunks)[8]) {
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

// Which original k (0..63 inside a 64-K block) the weight fragments put at position p (0..63: k16 step p / 16,
// slot p % 16 of the step's 16). The token operand stores its value of original k at this position.
__host__ __device__ constexpr int weight_k_of_position(int p) {
    // Per step parity and slot half: the element (0..7 inside the word) at slots (2t, 2t+1) and (2t+8, 2t+9).
    // Odd nibbles: slots 2t, 2t+1 = bytes 1, 3 = elements 3, 7; slots 2t+8, 2t+9 = bytes 0, 2 = elements 1, 5.
    // Even nibbles: elements 2, 6 and 0, 4.
    const int step = p / 16, slot = p % 16;
    const int t = (slot % 8) / 2, second = slot % 2, high_slots = slot / 8;
    const int odd = step % 2 == 0;
    const int element = odd ? (high_slots ? 1 : 3) + 4 * second : (high_slots ? 0 : 2) + 4 * second;
    return 16 * t + 8 * (step / 2) + element;
}
