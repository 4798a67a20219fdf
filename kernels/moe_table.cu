// moe_table.cu: the group table of an MoE-layout call (grouped_mm), written on the device from the expert end
// offsets, which only the device holds (so the host never synchronises, and one captured graph serves any routing).
//
// One CTA of as many threads as experts rounded up to a warp; thread e writes expert e's entry from its layout
// (moe_layout.cuh: two rounds of block-wide scans). With one warp (E <= 32) the kernel is a single chain of
// dependent instructions that nothing hides, so its time is its instruction latency, and a longer chain delays the
// whole call: the kernel after it reads the table only once it has ended.
// It runs before the portable kernel, and before the stream-K kernel where the experts outnumber the MoE pre-pass's
// threads (hopper_streamk.cu derives the layout in every pre-pass block otherwise); there it also writes the
// schedule's tables (hopper_device_tables), which every pre-pass block would otherwise rebuild, and the kernel
// chain is table -> pre-pass -> main, each a programmatic dependent of the one before: every launch overlaps its
// predecessor's tail, and each waits (griddepcontrol.wait) before touching memory.
#include <cuda_runtime.h>
#include <stdint.h>

#include "group_table.h"
#include "hopper_schedule.h"
#include "launchers.h"
#include "moe_layout.cuh"

namespace {

constexpr int MAX_EXPERTS = NVFP4_MOE_MAX_EXPERTS;

__global__ void __launch_bounds__(MAX_EXPERTS) moe_table_kernel(const nvfp4_moe_call call, nvfp4_group_entry *table) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // The stream-K pre-pass after it (a programmatic dependent) may launch now and wait for this kernel's writes.
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
    // On the stream-K path this kernel is itself a programmatic dependent of the kernel before it, which may write
    // the offsets (or have freed the memory this table reuses): nothing is read or written before that one ends.
    // Without the launch attribute it returns at once.
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
    __shared__ round_totals<MAX_EXPERTS / MOE_WARP> shared;
    const int e = threadIdx.x;
    const bool expert = e < call.experts;
    const bool stream_k = call.schedule_tables != nullptr;  // uniform
    const moe_expert_layout layout = derive_moe_layout(call, call.ctas, stream_k, shared);
    if (stream_k) {
        hopper_device_tables *tables = static_cast<hopper_device_tables *>(call.schedule_tables);
        if (e == 0) {
            tables->count = call.experts;
            tables->chunk_rows = layout.problem.chunk_rows;
            tables->padded_rows = layout.rows_total;
        }
        if (expert) {
            // Where hopper_device_tables_* put them, from call.experts: thread 0's write of count is not visible.
            hopper_prefix *prefix = reinterpret_cast<hopper_prefix *>(tables + 1);
            hopper_problem *problems = reinterpret_cast<hopper_problem *>(prefix + call.experts + 1);
            int32_t *row_prefix = reinterpret_cast<int32_t *>(problems + call.experts);
            prefix[e] = layout.before;
            problems[e] = layout.problem;
            row_prefix[e] = layout.rows_before;
            if (e == call.experts - 1) {
                prefix[e + 1] = layout.total;
                row_prefix[e + 1] = layout.rows_total;
            }
        }
    }
    if (expert) table[e] = moe_group_entry(call, e, layout);
}

}  // namespace

extern "C" int nvfp4_moe_table_launch(const nvfp4_moe_call *call, nvfp4_group_entry *table, void *stream) {
    if (call->experts < 1 || call->experts > MAX_EXPERTS) return cudaErrorInvalidValue;
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(1);
    config.blockDim = dim3((call->experts + 31) / 32 * 32);
    config.stream = static_cast<cudaStream_t>(stream);
    // The stream-K path (sm_90, schedule tables wanted) launches it as a programmatic dependent, so its launch
    // overlaps the tail of the kernel before it; the portable path (any GPU) launches it plainly.
    cudaLaunchAttribute attribute = {};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    if (call->schedule_tables) config.attrs = &attribute, config.numAttrs = 1;
    const cudaError_t failed = cudaLaunchKernelEx(&config, moe_table_kernel, *call, table);
    return failed != cudaSuccess ? failed : cudaGetLastError();
}
