// wgmma_overlap.cu: how a consumer warpgroup's own per-block work adds to its wgmma time (bench/NOTES.md,
// Hopper v3). Each warpgroup runs 2000 blocks of four wgmma m64n128k16 (A from registers, B from a swizzled
// shared tile, wait_group 1 or 0 after each block's commit) with a dependent integer chain of WORK steps between
// blocks standing in for the fragment decode. On an H200:
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a bench/wgmma_overlap.cu -o /tmp/wgmma_overlap && /tmp/wgmma_overlap
#include <stdint.h>
#include <stdio.h>
__device__ __forceinline__ void mma(float (&d)[64], const uint32_t (&a)[4], uint64_t desc) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
  "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
  : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]) : "r"(a[0]),"r"(a[1]),"r"(a[2]),"r"(a[3]),"l"(desc),"r"(1));
}
template <int WORK, int WAIT>
__global__ void __launch_bounds__(256, 1) k(const uint32_t *in, float *out, long long *cycles, int n) {
  __shared__ __align__(1024) uint8_t sm[64 * 1024];
  for (int i = threadIdx.x; i < 16384; i += blockDim.x) ((uint32_t*)sm)[i] = 0x3c003c00u;
  __syncthreads();
  float d[64];
  for (int i = 0; i < 64; i++) d[i] = 0;
  uint32_t fa[4][4], fb[4][4];
  uint32_t seed = in[threadIdx.x];
  auto load = [&](int kb, uint32_t (&f)[4][4]) {
    uint32_t x = seed + kb;
    #pragma unroll 1
    for (int w = 0; w < WORK; w++) x = x * 1664525u + 1013904223u;
    for (int s=0;s<4;s++) for (int j=0;j<4;j++) f[s][j] = 0x3c003c00u ^ (x & 0x00010001u);
  };
  const uint64_t base = ((uint32_t)__cvta_generic_to_shared(sm) >> 4) | (1ull<<62) | (64ull<<32) | (1ull << 16);
  auto step = [&](int kb, uint32_t (&f)[4][4], uint32_t (&nf)[4][4]) {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    for (int s = 0; s < 4; s++) mma(d, f[s], base + s * 2);
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(WAIT) : "memory");
    if (kb + 1 < n) load(kb + 1, nf);
  };
  load(0, fa);
  long long t0 = clock64();
  for (int kb = 0; kb < n; kb += 2) { step(kb, fa, fb); if (kb+1<n) step(kb+1, fb, fa); }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  long long t1 = clock64();
  if (threadIdx.x % 128 == 0) cycles[blockIdx.x * 2 + threadIdx.x / 128] = t1 - t0;
  float s = 0; for (int i = 0; i < 64; i++) s += d[i];
  out[blockIdx.x * 256 + threadIdx.x] = s;
}
template <int WORK, int WAIT = 1> void run(int threads, int blocks, const char *name) {
  uint32_t *in; float *out; long long *cyc;
  cudaMalloc(&in, 4096); cudaMemset(in, 0, 4096); cudaMalloc(&out, blocks * 256 * 4); cudaMalloc(&cyc, blocks * 16);
  const int n = 2000;
  k<WORK, WAIT><<<blocks, threads>>>(in, out, cyc, n); cudaDeviceSynchronize();
  k<WORK, WAIT><<<blocks, threads>>>(in, out, cyc, n);
  long long h[2]; cudaMemcpy(h, cyc, 16, cudaMemcpyDeviceToHost);
  printf("%-28s WGs=%d blocks=%d: %.0f cycles per 64-K block per WG (tensor floor %d)  err=%s\n", name, threads/128, blocks,
         (double)h[0] / n, 4 * 128 * 64 * 16 * 2 / 4096 * threads / 128, cudaGetErrorString(cudaGetLastError()));
}
int main() {
  run<0>(128, 1, "1 WG, no decode");
  run<0>(256, 1, "2 WG, no decode");
  run<0>(256, 132, "2 WG x 132 CTAs, no decode");
  run<20>(256, 1, "2 WG, 20-op chain");
  run<60>(256, 1, "2 WG, 60-op chain");
  run<150>(256, 1, "2 WG, 150-op chain");
  run<0, 0>(256, 1, "2 WG, serial, no decode");
  run<20, 0>(256, 1, "2 WG, serial, 20-op chain");
  run<60, 0>(256, 1, "2 WG, serial, 60-op chain");
  run<60>(128, 1, "1 WG, 60-op chain");
  run<60, 0>(128, 1, "1 WG, serial, 60-op chain");
  return 0;
}
