// probe_host.h: the host side the probes that check against float64 share: the check macro for CUDA calls, and
// the exact values of e2m1 and e4m3 codes for their references.
#pragma once

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmath>

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        cudaError_t err_ = (call);                                                                   \
        if (err_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(err_)); \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

static inline double e2m1_value(int code) {
    static const double magnitude[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (code & 8 ? -1 : 1) * magnitude[code & 7];
}

static inline double e4m3_value(int code) {
    const int e = (code >> 3) & 15, m = code & 7;
    const double v = e == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    return code & 0x80 ? -v : v;
}
