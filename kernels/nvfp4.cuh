// nvfp4.cuh: exact NVFP4 decode and blocked-scale addressing, shared by every kernel family.
//
// Exactness: an e2m1 value has at most 2 significant bits and an e4m3 scale at most 4, so their product
// (at most 6 bits, a multiple of 2^-10, at most 2688) is exact in fp16, even scaled by a power of two as
// below. Every helper here is exact for all finite inputs; NaN scale codes decode to NaN.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include "group_table.h"

// Byte offset, inside its 512-byte atom, of the 4 scales (64 K elements) of row `row` in one 64-K block; the
// 4 bytes are consecutive (scale column j % 4).
__device__ __forceinline__ int32_t sf_atom_offset(int32_t row) {
    return (row % 32) * 16 + ((row % NVFP4_SF_ATOM_ROWS) / 32) * 4;
}

// Byte offset, inside one batch slice of a blocked scale tensor, of the 4 scales that row `row` has in
// 64-K block `kblock`.
__device__ __forceinline__ int64_t sf_offset(int32_t row, int32_t kblock, int32_t rowblock_stride,
                                             int32_t kblock_stride) {
    return (int64_t)(row / NVFP4_SF_ATOM_ROWS) * rowblock_stride + (int64_t)kblock * kblock_stride +
           sf_atom_offset(row);
}

// Decoded operands carry a factor 2^-7 (OPERAND_SCALE_LOG2), so that one fp16 multiply does the whole
// dequantization: e2m1 bits placed as (value * 2^-14) times (scale * 2^7). scale * 2^7 <= 448 * 128 = 57344
// fits fp16, and value * scale * 2^-7 is a multiple of 2^-17 below 2688 * 2^-7 = 21, so it is an exact fp16
// (a subnormal below 2^-14; GPU fp16 arithmetic and the tensor cores keep subnormals). A product of two
// operands then carries 2^-14, which the epilogue removes with one exact fp32 multiply (ACCUMULATOR_SCALE).
constexpr int OPERAND_SCALE_LOG2 = -7;
constexpr float ACCUMULATOR_SCALE = 16384.0f;  // 2^(-2 * OPERAND_SCALE_LOG2)

// One e4m3 scale byte to fp16 scale * 2^7, exactly. Placing the 7 magnitude bits at fp16 bits 13..7 gives
// the value times 2^-8 (subnormals included, since both formats put the implicit bit the same way), and the
// multiply by 2^15 is exact. 0x7F / 0xFF are e4m3's NaN.
__device__ __forceinline__ __half e4m3_to_scaled_half(uint32_t byte) {
    const uint32_t magnitude = byte & 0x7Fu;
    if (magnitude == 0x7Fu) return __ushort_as_half((unsigned short)0x7E00u);
    const unsigned short bits = (unsigned short)(((byte & 0x80u) << 8) | (magnitude << 7));
    return __hmul(__ushort_as_half(bits), __ushort_as_half((unsigned short)0x7800u /* 2^15 */));
}

// The 4 scale bytes of one row and 64-K block (the atom keeps them consecutive, byte j = scale group j) to
// fp16 scale * 2^7, exactly as e4m3_to_scaled_half does each: out[0] = (group 0, group 1), out[1] =
// (group 2, group 3). Both halves of a pair go through the same bit placement and one HMUL2; the NaN codes
// become fp16 NaN by setting their exponent bits.
__device__ __forceinline__ void e4m3x4_to_scaled_half2(uint32_t bytes, __half2 (&out)[2]) {
    const uint32_t nan_bytes = __vcmpeq4(bytes & 0x7F7F7F7Fu, 0x7F7F7F7Fu);  // 0xFF where a byte is NaN
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const uint32_t selector = i ? 0x4342u : 0x4140u;  // bytes 2i, 2i+1 into the low bytes of the halves
        const uint32_t widened = __byte_perm(bytes, 0, selector);
        const uint32_t bits = ((widened & 0x007F007Fu) << 7) | ((widened & 0x00800080u) << 8);
        __half2 value = __hmul2(*reinterpret_cast<const __half2 *>(&bits), __half2half2(__ushort_as_half((unsigned short)0x7800u)));
        const uint32_t nan_halves = __byte_perm(nan_bytes, 0, i ? 0x3322u : 0x1100u) & 0x7E007E00u;
        const uint32_t result = *reinterpret_cast<uint32_t *>(&value) | nan_halves;
        out[i] = *reinterpret_cast<const __half2 *>(&result);
    }
}

// 8 e2m1 values (one 32-bit word, element i in bits 4i..4i+3; the byte layout puts element 2j in the low
// nibble of byte j) times one scale, as 4 half2 where half2 i holds (element i, element i + 4). Placing the
// 3 magnitude bits of a nibble at fp16 bits 11..9 (exponent low bits and top mantissa bit) and its sign at
// bit 15 gives value * 2^-14 exactly (code 1, 0.5, becomes the subnormal 2^-15); pairing element i with
// element i + 4 lets one shift and mask place both halves at once: ~4 integer ops and one HMUL2 per pair.
// The pairing permutes K inside each group of 8; kernels decode both operands with this same function,
// so every dot product is unchanged. Values carry 2^-7 as above.
__device__ __forceinline__ void dequant_e2m1x8_paired(uint32_t packed, __half2 scaled_scale, uint32_t (&out)[4]) {
    const uint32_t magnitude = 0x0E000E00u, sign = 0x80008000u;
    const uint32_t bits[4] = {((packed << 9) & magnitude) | ((packed << 12) & sign),
                              ((packed << 5) & magnitude) | ((packed << 8) & sign),
                              ((packed << 1) & magnitude) | ((packed << 4) & sign),
                              ((packed >> 3) & magnitude) | (packed & sign)};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 value = __hmul2(*reinterpret_cast<const __half2 *>(&bits[i]), scaled_scale);
        out[i] = *reinterpret_cast<uint32_t *>(&value);
    }
}
