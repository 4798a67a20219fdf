/* Unit tests of grouped_mm's argument rules (csrc/moe_args.c), pure C: the rules a CPU cannot reach through Python
 * (CUDA tensors' alignment; sizes past 32 bits), the offsets' debug check, and the call the kernels get. Built and run
 * by tests/test_planner_c.py. Prints one line per failed check and closes with "N passed, N failed". */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "moe_args.h"

/* A valid CUDA call: T = 200 tokens, E = 3 experts, N = 72, K = 128, a_scale of 512 rows; every tensor contiguous
 * and 256-byte aligned, its sizes and strides in the call's own arrays. */
typedef struct call_arrays {
    int64_t sizes[7][3], strides[7][3];
} call_arrays;

static nvfp4_tensor_desc contiguous(nvfp4_dtype dtype, const char *name, uintptr_t data, int32_t ndim,
                                    const int64_t *sizes, int64_t *sizes_out, int64_t *strides_out) {
    nvfp4_tensor_desc t;
    memset(&t, 0, sizeof t);
    int64_t stride = 1;
    for (int32_t d = ndim - 1; d >= 0; d--) {
        sizes_out[d] = sizes[d];
        strides_out[d] = stride;
        stride *= sizes[d];
    }
    t.data = data;
    t.dtype = dtype;
    t.dtype_name = name;
    t.device_type = NVFP4_DEVICE_CUDA;
    t.device_type_name = "cuda";
    t.device_index = 0;
    t.ndim = ndim;
    t.sizes = sizes_out;
    t.strides = strides_out;
    return t;
}

static nvfp4_moe_args valid_call(call_arrays *s) {
    nvfp4_moe_args args;
    memset(&args, 0, sizeof args);
    const int64_t a[2] = {200, 64}, b[3] = {3, 72, 64}, a_scale[2] = {512, 8}, b_scale[3] = {3, 128, 8};
    const int64_t offsets[1] = {3}, alpha[1] = {3}, out[2] = {200, 72};
    args.a = contiguous(NVFP4_DTYPE_FP4X2, "torch.float4_e2m1fn_x2", 0x100000, 2, a, s->sizes[0], s->strides[0]);
    args.b = contiguous(NVFP4_DTYPE_UINT8, "torch.uint8", 0x200000, 3, b, s->sizes[1], s->strides[1]);
    args.a_scale = contiguous(NVFP4_DTYPE_FP8_E4M3FN, "torch.float8_e4m3fn", 0x300000, 2, a_scale, s->sizes[2],
                              s->strides[2]);
    args.b_scale = contiguous(NVFP4_DTYPE_FP8_E4M3FN, "torch.float8_e4m3fn", 0x400000, 3, b_scale, s->sizes[3],
                              s->strides[3]);
    args.offsets = contiguous(NVFP4_DTYPE_INT32, "torch.int32", 0x500000, 1, offsets, s->sizes[4], s->strides[4]);
    args.alpha = contiguous(NVFP4_DTYPE_FLOAT32, "torch.float32", 0x600000, 1, alpha, s->sizes[5], s->strides[5]);
    args.out = contiguous(NVFP4_DTYPE_BFLOAT16, "torch.bfloat16", 0x700000, 2, out, s->sizes[6], s->strides[6]);
    args.has_alpha = args.has_out = 1;
    args.out_bf16 = 1;
    return args;
}

/* The status, and whether the message starts with `prefix`. */
static int refused(const nvfp4_moe_args *args, nvfp4_status expected, const char *prefix) {
    nvfp4_moe_shape shape;
    nvfp4_error error;
    memset(&error, 0, sizeof error);
    const nvfp4_status status = nvfp4_moe_check(args, &shape, &error);
    if (status != expected || strncmp(error.message, prefix, strlen(prefix)) != 0) {
        printf("  got status %d, message \"%s\"; expected %d, \"%s...\"\n", (int)status, error.message, (int)expected,
               prefix);
        return 0;
    }
    return 1;
}

static void test_valid_call_and_its_kernel_arguments(void) {
    call_arrays s;
    nvfp4_moe_args args = valid_call(&s);
    nvfp4_moe_shape shape;
    nvfp4_error error;
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
    CHECK(shape.tokens == 200 && shape.experts == 3 && shape.n == 72 && shape.k == 128 && shape.scale_rows == 512);
    CHECK(shape.device_type == NVFP4_DEVICE_CUDA && shape.device_index == 0);
    const nvfp4_moe_call call = nvfp4_moe_make_call(&args, &shape, 0);
    CHECK(call.a == (const uint8_t *)0x100000 && call.b == (const uint8_t *)0x200000);
    CHECK(call.a_scale == (const uint8_t *)0x300000 && call.b_scale == (const uint8_t *)0x400000);
    CHECK(call.offsets == (const int32_t *)0x500000 && call.alpha == (const float *)0x600000);
    CHECK(call.out == (uint8_t *)0x700000 && call.out_bf16 == 1 && call.tokens == 200 && call.experts == 3);
    args.has_out = args.has_alpha = 0;  /* the module's own output; alpha 1 */
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
    const nvfp4_moe_call made = nvfp4_moe_make_call(&args, &shape, 0x800000);
    CHECK(made.out == (uint8_t *)0x800000 && made.alpha == NULL);
}

static void test_alignment_of_cuda_tensors(void) {
    /* Each tensor moved off its alignment alone: (which one, bytes off, the message's start). */
    static const struct {
        size_t field;
        uintptr_t off;
        const char *prefix;
    } misaligned[] = {
        {offsetof(nvfp4_moe_args, a), 8, "grouped_mm: a: expected a 16-byte aligned data pointer"},
        {offsetof(nvfp4_moe_args, b_scale), 4, "grouped_mm: b_scale: expected a 16-byte aligned"},
        {offsetof(nvfp4_moe_args, out), 2, "grouped_mm: out: expected a 16-byte aligned"},
        {offsetof(nvfp4_moe_args, offsets), 2, "grouped_mm: offsets: expected a 4-byte aligned"},
    };
    call_arrays s;
    nvfp4_moe_args args;
    for (size_t i = 0; i < sizeof misaligned / sizeof misaligned[0]; i++) {
        args = valid_call(&s);
        ((nvfp4_tensor_desc *)((char *)&args + misaligned[i].field))->data += misaligned[i].off;
        CHECK(refused(&args, NVFP4_VALUE_ERROR, misaligned[i].prefix));
    }
    args = valid_call(&s);
    args.offsets.data += 4;  /* 4 bytes is enough for the offsets and alpha */
    args.alpha.data += 4;
    nvfp4_moe_shape shape;
    nvfp4_error error;
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
    args.has_out = 0;
    args.out.data += 2;  /* not given: not checked */
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
}

static void test_sizes_past_32_bits_and_too_many_experts(void) {
    call_arrays s;
    nvfp4_moe_args args = valid_call(&s);
    s.sizes[0][0] = (int64_t)1 << 31;  /* T */
    s.sizes[6][0] = (int64_t)1 << 31;
    CHECK(refused(&args, NVFP4_VALUE_ERROR, "grouped_mm: expected T < 2^31"));
    args = valid_call(&s);
    const int64_t experts = NVFP4_MOE_MAX_EXPERTS + 1;
    s.sizes[1][0] = s.sizes[3][0] = s.sizes[4][0] = s.sizes[5][0] = experts;
    CHECK(refused(&args, NVFP4_VALUE_ERROR, "grouped_mm: expected T < 2^31"));
    args = valid_call(&s);
    s.sizes[1][0] = s.sizes[3][0] = s.sizes[4][0] = s.sizes[5][0] = NVFP4_MOE_MAX_EXPERTS;
    nvfp4_moe_shape shape;
    nvfp4_error error;
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
    args = valid_call(&s);
    args.a.device_type = args.b.device_type = args.a_scale.device_type = args.b_scale.device_type = NVFP4_DEVICE_CPU;
    args.offsets.device_type = args.alpha.device_type = args.out.device_type = NVFP4_DEVICE_CPU;
    args.a.device_index = args.b.device_index = args.a_scale.device_index = args.b_scale.device_index = -1;
    args.offsets.device_index = args.alpha.device_index = args.out.device_index = -1;
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK && shape.device_type == NVFP4_DEVICE_CPU);
    args.a.data += 8;  /* the reference reads CPU tensors at any alignment */
    CHECK(nvfp4_moe_check(&args, &shape, &error) == NVFP4_OK);
    s.sizes[0][0] = (int64_t)1 << 31;  /* but the sizes travel in 32 bits there too */
    s.sizes[6][0] = (int64_t)1 << 31;
    CHECK(refused(&args, NVFP4_VALUE_ERROR, "grouped_mm: expected T < 2^31"));
}

static void test_devices(void) {
    call_arrays s;
    nvfp4_moe_args args = valid_call(&s);
    args.alpha.device_index = 1;
    CHECK(refused(&args, NVFP4_VALUE_ERROR, "grouped_mm: alpha: expected a tensor on a's device (cuda:0), got cuda:1"));
    args = valid_call(&s);
    args.a.device_type = NVFP4_DEVICE_OTHER;
    args.a.device_type_name = "meta";
    CHECK(refused(&args, NVFP4_VALUE_ERROR, "grouped_mm: a: expected a CUDA (or CPU) tensor, got one on meta"));
}

static void test_offsets_debug_check(void) {
    nvfp4_moe_shape shape = {200, 3, 72, 128, 512, NVFP4_DEVICE_CUDA, 0};
    nvfp4_error error;
    const int32_t good[3] = {10, 10, 200}, empty[3] = {0, 0, 0};
    CHECK(nvfp4_moe_check_offsets(good, &shape, &error) == NVFP4_OK);
    CHECK(nvfp4_moe_check_offsets(empty, &shape, &error) == NVFP4_OK);
    const int32_t decreasing[3] = {10, 5, 200}, past[3] = {10, 20, 201}, negative[3] = {-1, 5, 200};
    CHECK(nvfp4_moe_check_offsets(decreasing, &shape, &error) == NVFP4_VALUE_ERROR &&
          strstr(error.message, "offsets[1] = 5 after 10"));
    CHECK(nvfp4_moe_check_offsets(past, &shape, &error) == NVFP4_VALUE_ERROR &&
          strstr(error.message, "offsets[2] = 201"));
    CHECK(nvfp4_moe_check_offsets(negative, &shape, &error) == NVFP4_VALUE_ERROR &&
          strstr(error.message, "offsets[0] = -1"));
    /* 200 tokens as 129 + 1 + 70 need 256 + 128 + 128 = 512 scale rows: just fit; 384 rows do not. */
    const int32_t blocks[3] = {129, 130, 200};
    CHECK(nvfp4_moe_check_offsets(blocks, &shape, &error) == NVFP4_OK);
    shape.scale_rows = 384;
    CHECK(nvfp4_moe_check_offsets(blocks, &shape, &error) == NVFP4_VALUE_ERROR &&
          strstr(error.message, "a_scale: expert 2's block (rows 384..454) runs past its 384 rows"));
}

int main(void) {
    test_valid_call_and_its_kernel_arguments();
    test_alignment_of_cuda_tensors();
    test_sizes_past_32_bits_and_too_many_experts();
    test_devices();
    test_offsets_debug_check();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
