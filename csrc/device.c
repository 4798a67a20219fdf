/* device.c: device selection, the group-table ring and kernel launches, on the CUDA runtime.
 *
 * A group table of at most nvfp4_cuda_inline_capacity() entries travels by value in the kernel's
 * parameters: nothing to copy, nothing to guard, and a graph capture bakes it into the graph.
 * Larger tables go through a per-device ring of slots, each a pinned host buffer and a device buffer:
 * write the slot on the host, copy it to the device on the caller's stream, launch, record the slot's
 * event. A slot is reused only after its event completed, so no copy or kernel still in flight ever
 * sees it rewritten; with RING_SLOTS slots the host waits only when it runs that many calls ahead.
 * A graph capture cannot use the ring (a replay would read whatever the slot holds by then), so a
 * captured call gets buffers of its own that live as long as the module.
 *
 * Kernel family: the stream-K Hopper kernel (sm_90a machine code only) on devices of compute capability 9.0,
 * the portable one everywhere else, when the module forces it, or for a call past the stream-K kernel's limits
 * (launchers.h); a device's capability and SM count are asked once. The stream-K kernel plans its own schedule
 * on the GPU (hopper_schedule.h); the host sizes its token scratch and chooses the call's chunk limit.
 */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopper_schedule.h"
#include "launchers.h"

int32_t nvfp4_cuda_inline_capacity(void) { return NVFP4_INLINE_CAPACITY; }

#define RING_SLOTS 16

const int32_t nvfp4_cuda_ring_slots = RING_SLOTS;

#ifdef NVFP4_WITH_CUDA

#include <cuda_runtime_api.h>

/* The stream-K Hopper kernel's launcher; none in a build that leaves that kernel out (NVFP4_WITHOUT_HOPPER_KERNEL:
 * the one-file submission built for another GPU), and then no device runs it. */
#ifdef NVFP4_WITHOUT_HOPPER_KERNEL
static const nvfp4_launch_fn hopper_launch = NULL;
static const int hopper_built = 0;
#else
static const nvfp4_launch_fn hopper_launch = nvfp4_hopper_streamk_launch;
static const int hopper_built = 1;
#endif

#define MAX_DEVICES NVFP4_MAX_DEVICES
#define SLOT_ALIGN 4096

typedef struct table_ring {
    uint8_t *host;               /* pinned, RING_SLOTS * slot_bytes */
    uint8_t *device;             /* RING_SLOTS * slot_bytes */
    size_t slot_bytes;
    cudaEvent_t done[RING_SLOTS];
    int in_use[RING_SLOTS];
    int next;
} table_ring;

typedef struct captured_table {
    struct captured_table *next;
    void *host;
    void *device;
} captured_table;

struct nvfp4_cuda {
    table_ring rings[MAX_DEVICES];
    int capability[MAX_DEVICES]; /* major * 10 + minor; 0 until first asked */
    int multiprocessors[MAX_DEVICES];
    nvfp4_kernel_choice choice;
    hopper_problem streamk_problems[NVFP4_STREAMK_MAX_GROUPS]; /* the call's sizes, to choose its chunk limit */
    captured_table *captured;
    cudaMemPool_t table_pools[MAX_DEVICES]; /* grouped_mm's tables: a pool that keeps its memory; made on first use */
    nvfp4_cuda_stats stats;
};

const int nvfp4_built_with_cuda = 1;

/* The one check for every CUDA call: on failure, word the error and take the function's error exit. The
 * runtime also keeps the error as the thread's last error, which the next call's launch check
 * (cudaGetLastError) would report as its own: taken here, so that after a recoverable failure (out of memory)
 * the next call runs. A sticky error stays: every later call reports it. */
#define CUDA_CHECK(call)                                                                                    \
    do {                                                                                                    \
        cudaError_t status_ = (call);                                                                       \
        if (status_ != cudaSuccess) {                                                                       \
            snprintf(message, message_size, "CUDA error in %s: %s (%s)", #call, cudaGetErrorString(status_), \
                     cudaGetErrorName(status_));                                                            \
            (void)cudaGetLastError();                                                                       \
            goto fail;                                                                                      \
        }                                                                                                   \
    } while (0)

nvfp4_cuda *nvfp4_cuda_create(void) { return (nvfp4_cuda *)calloc(1, sizeof(nvfp4_cuda)); }

nvfp4_cuda_stats nvfp4_cuda_get_stats(const nvfp4_cuda *cuda) { return cuda->stats; }

void nvfp4_cuda_choose_kernel(nvfp4_cuda *cuda, nvfp4_kernel_choice choice) { cuda->choice = choice; }

/* Best effort at interpreter exit: the driver may already be shutting down, so errors are ignored. */
void nvfp4_cuda_destroy(nvfp4_cuda *cuda) {
    if (!cuda) return;
    for (int d = 0; d < MAX_DEVICES; d++) {
        table_ring *ring = &cuda->rings[d];
        if (!ring->host) continue;
        if (cudaSetDevice(d) != cudaSuccess) continue;
        for (int i = 0; i < RING_SLOTS; i++) cudaEventDestroy(ring->done[i]);
        cudaFreeHost(ring->host);
        cudaFree(ring->device);
    }
    for (captured_table *t = cuda->captured, *next; t; t = next) {
        next = t->next;
        cudaFreeHost(t->host);
        cudaFree(t->device);
        free(t);
    }
    for (int d = 0; d < MAX_DEVICES; d++)
        if (cuda->table_pools[d]) cudaMemPoolDestroy(cuda->table_pools[d]);
    free(cuda);
}

/* Makes `device` current; *previous receives the device to restore. */
static int enter_device(int32_t device, int *previous, char *message, size_t message_size) {
    CUDA_CHECK(cudaGetDevice(previous));
    if (*previous != device) CUDA_CHECK(cudaSetDevice(device));
    return 0;
fail:
    return -1;
}

/* Restores the caller's device. After an earlier failure its message is kept and this one's error ignored. */
static int leave_device(int32_t device, int previous, int status, char *message, size_t message_size) {
    if (previous == device) return status;
    cudaError_t restored = cudaSetDevice(previous);
    if (status || restored == cudaSuccess) return status;
    CUDA_CHECK(restored);
fail:
    return -1;
}

/* Waits for every slot, then replaces the buffers with ones of at least `bytes` per slot. Runs only
 * when a call has more groups than any call before it on this device. */
static int grow_ring(table_ring *ring, size_t bytes, char *message, size_t message_size) {
    size_t slot_bytes = ring->slot_bytes ? ring->slot_bytes : SLOT_ALIGN;
    while (slot_bytes < bytes) slot_bytes *= 2;
    if (ring->host) {
        for (int i = 0; i < RING_SLOTS; i++)
            if (ring->in_use[i]) CUDA_CHECK(cudaEventSynchronize(ring->done[i]));
        CUDA_CHECK(cudaFreeHost(ring->host));
        ring->host = NULL;
        CUDA_CHECK(cudaFree(ring->device));
        ring->device = NULL;
    } else {
        for (int i = 0; i < RING_SLOTS; i++) CUDA_CHECK(cudaEventCreateWithFlags(&ring->done[i], cudaEventDisableTiming));
    }
    memset(ring->in_use, 0, sizeof ring->in_use);
    CUDA_CHECK(cudaHostAlloc((void **)&ring->host, slot_bytes * RING_SLOTS, cudaHostAllocDefault));
    CUDA_CHECK(cudaMalloc((void **)&ring->device, slot_bytes * RING_SLOTS));
    ring->slot_bytes = slot_bytes;
    return 0;
fail:
    return -1;
}

/* Buffers of its own for a table that a graph capture will hold; allocated in relaxed capture mode,
 * since allocation is not allowed while the thread captures in global mode. */
static int captured_buffers(nvfp4_cuda *cuda, size_t bytes, void **host, void **device, char *message,
                            size_t message_size) {
    enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    int exchanged = 0;
    captured_table *t = (captured_table *)calloc(1, sizeof *t);
    if (!t) {
        snprintf(message, message_size, "out of host memory for a captured group table");
        return -1;
    }
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    exchanged = 1;
    CUDA_CHECK(cudaHostAlloc(&t->host, bytes, cudaHostAllocDefault));
    CUDA_CHECK(cudaMalloc(&t->device, bytes));
    exchanged = 0;
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    t->next = cuda->captured;
    cuda->captured = t;
    cuda->stats.captured_tables++;
    *host = t->host;
    *device = t->device;
    return 0;
fail:
    if (exchanged) cudaThreadExchangeStreamCaptureMode(&mode);
    if (t->host) cudaFreeHost(t->host);
    free(t);
    return -1;
}

/* Whether the Hopper kernel runs on `device`: compute capability 9.0 and not forced off. The device's
 * capability and SM count are asked once. */
static int runs_hopper(nvfp4_cuda *cuda, int32_t device, int *hopper, char *message, size_t message_size) {
    if (!cuda->capability[device]) {
        int major = 0, minor = 0, multiprocessors = 0;
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
        CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
        CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
        cuda->capability[device] = major * 10 + minor;
        cuda->multiprocessors[device] = multiprocessors;
    }
    *hopper = hopper_built && cuda->capability[device] == 90 && cuda->choice != NVFP4_KERNEL_PORTABLE;
    return 0;
fail:
    return -1;
}

static int check_device_index(int32_t device, char *message, size_t message_size) {
    if (device >= 0 && device < MAX_DEVICES) return 0;
    snprintf(message, message_size, "device cuda:%d is beyond the %d devices this build supports", device,
             MAX_DEVICES);
    return -1;
}

static void count_launch(nvfp4_cuda *cuda, nvfp4_launch_fn launch) {
    if (launch == nvfp4_portable_launch) cuda->stats.portable_launches++;
    else cuda->stats.streamk_launches++;
}

/* The large-table path: copy the table to the device on the stream, then launch. */
static int run_through_device_memory(nvfp4_cuda *cuda, nvfp4_launch_fn launch, const nvfp4_group_entry *entries,
                                     const nvfp4_plan *plan, const nvfp4_launch_shape *shape, cudaStream_t stream,
                                     char *message, size_t message_size) {
    const size_t bytes = sizeof(nvfp4_group_entry) * (size_t)plan->num_entries;
    enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    table_ring *ring = &cuda->rings[plan->device_index];
    cudaEvent_t done = NULL;
    int slot = -1;
    void *host, *device;

    CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    if (capture == cudaStreamCaptureStatusActive) {
        if (captured_buffers(cuda, bytes, &host, &device, message, message_size)) return -1;
    } else {
        if (bytes > ring->slot_bytes && grow_ring(ring, bytes, message, message_size)) return -1;
        slot = ring->next;
        ring->next = (ring->next + 1) % RING_SLOTS;
        if (ring->in_use[slot]) {
            cudaError_t query = cudaEventQuery(ring->done[slot]);
            if (query == cudaErrorNotReady) {
                cuda->stats.ring_waits++;
                CUDA_CHECK(cudaEventSynchronize(ring->done[slot]));
            } else {
                CUDA_CHECK(query);
            }
        }
        host = ring->host + (size_t)slot * ring->slot_bytes;
        device = ring->device + (size_t)slot * ring->slot_bytes;
        done = ring->done[slot];
        cuda->stats.ring_launches++;
    }
    memcpy(host, entries, bytes);
    CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream));
    CUDA_CHECK((cudaError_t)launch(NULL, (const nvfp4_group_entry *)device, plan->num_entries, shape, stream));
    if (done) {
        CUDA_CHECK(cudaEventRecord(done, stream));
        ring->in_use[slot] = 1;
    }
    return 0;
fail:
    return -1;
}

int nvfp4_cuda_configure(nvfp4_cuda *cuda, nvfp4_group_entry *entries, const nvfp4_plan *plan,
                         nvfp4_launch_config *config, char *message, size_t message_size) {
    const int32_t device = plan->device_index;
    int hopper = 0;
    if (check_device_index(device, message, message_size) || runs_hopper(cuda, device, &hopper, message, message_size))
        return -1;
    config->launch = nvfp4_portable_launch;
    config->shape = (nvfp4_launch_shape){plan->total_tiles, plan->total_tiles, device, 0, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL};
    if (hopper && plan->num_entries <= NVFP4_STREAMK_MAX_GROUPS &&
        cuda->multiprocessors[device] <= NVFP4_STREAMK_MAX_CTAS) {
        /* One CTA per SM, the token scratch its pre-pass fills, the units it plans and the pre-pass's grid: one
         * thread per padded token row (within int32) by one block row per 64-K block (within a grid's y). */
        int64_t scratch_bytes = 0, units = 0, token_rows = 0;
        int32_t max_kblocks = 1;
        hopper_problem *problems = cuda->streamk_problems;
        for (int32_t i = 0; i < plan->num_entries; i++)
            problems[i] = (hopper_problem){entries[i].m, entries[i].n, entries[i].k, entries[i].l, 0};
        const int32_t chunk_rows = hopper_choose_chunk_rows(problems, plan->num_entries, cuda->multiprocessors[device]);
        for (int32_t i = 0; i < plan->num_entries; i++) {
            hopper_problem problem = problems[i];
            problem.chunk_rows = chunk_rows;
            const hopper_prefix totals = hopper_problem_totals(&problem);
            const hopper_shape shape = hopper_problem_shape(&problem);
            scratch_bytes += totals.scratch_bytes;
            units += totals.units;
            token_rows += (int64_t)problem.l * shape.tile_width;
            if (shape.kblocks > max_kblocks) max_kblocks = shape.kblocks;
        }
        if (token_rows <= INT32_MAX && max_kblocks <= NVFP4_STREAMK_MAX_KBLOCKS) {
            config->launch = hopper_launch;
            config->shape.grid = cuda->multiprocessors[device];
            config->shape.scratch_bytes = scratch_bytes;
            config->shape.schedule_units = units;
            config->shape.token_rows = token_rows > 0 ? token_rows : 1;
            config->shape.max_kblocks = max_kblocks;
            config->shape.chunk_rows = chunk_rows;
            return 0;
        }
    }
    return 0;
}

int nvfp4_cuda_launch(nvfp4_cuda *cuda, const nvfp4_group_entry *entries, const nvfp4_plan *plan,
                      const nvfp4_launch_config *config, uintptr_t stream, char *message, size_t message_size) {
    const int32_t device = config->shape.device;
    int previous = 0, status = -1;
    if (enter_device(device, &previous, message, message_size)) return -1;
    count_launch(cuda, config->launch);
    if (plan->num_entries <= nvfp4_cuda_inline_capacity()) {
        cuda->stats.inline_launches++;
        CUDA_CHECK((cudaError_t)config->launch(entries, NULL, plan->num_entries, &config->shape, (void *)stream));
        status = 0;
    } else {
        status = run_through_device_memory(cuda, config->launch, entries, plan, &config->shape, (cudaStream_t)stream,
                                           message, message_size);
    }
fail:
    return leave_device(device, previous, status, message, message_size);
}

/* The launch shape of an MoE-layout call from bounds, since the expert sizes live on the device. The stream-K
 * kernel: its pre-pass chooses the chunk limit (chunk_rows 0) and plans from the table; an expert of m rows has
 * at most m / 128 + 1 chunks under either limit, and its padded rows (the chunks' widths) are at most m + 15, so
 * T / 128 + E chunks and T + 15 E rows bound the units and the scratch. The portable kernel: an expert has at most
 * m / 64 + 1 tile rows; CTAs past the table's last tile exit. Returns 0, or -1 with the message written. */
static int moe_launch_shape(nvfp4_cuda *cuda, const nvfp4_moe_call *call, nvfp4_launch_config *config, char *message,
                            size_t message_size) {
    const int32_t device = call->device;
    const int64_t weight_tiles = ((int64_t)call->n + HOPPER_WEIGHT_ROWS - 1) / HOPPER_WEIGHT_ROWS;
    int hopper = 0;
    if (check_device_index(device, message, message_size) || runs_hopper(cuda, device, &hopper, message, message_size))
        return -1;
    nvfp4_launch_shape *shape = &config->shape;
    memset(shape, 0, sizeof *shape);
    shape->device = device;
    shape->alpha = call->alpha;
    shape->out_bf16 = call->out_bf16;
    const int64_t kblocks = call->k / HOPPER_KBLOCK_K, token_rows = (int64_t)call->tokens + 15 * (int64_t)call->experts;
    if (hopper && call->experts <= NVFP4_STREAMK_MAX_GROUPS && cuda->multiprocessors[device] <= NVFP4_STREAMK_MAX_CTAS &&
        kblocks <= NVFP4_STREAMK_MAX_KBLOCKS && token_rows <= INT32_MAX) {
        const int64_t chunks = call->tokens / HOPPER_CHUNK_NARROW_ROWS + call->experts;
        config->launch = hopper_launch;
        shape->grid = cuda->multiprocessors[device];
        shape->scratch_bytes = token_rows * kblocks * HOPPER_SCRATCH_ROW_BYTES;
        shape->schedule_units = weight_tiles * chunks;
        shape->token_rows = token_rows;
        shape->max_kblocks = (int32_t)kblocks;
        return 0;
    }
    const int64_t tiles = ((int64_t)call->tokens / NVFP4_TILE_M + call->experts) *
                          (((int64_t)call->n + NVFP4_TILE_N - 1) / NVFP4_TILE_N);
    if (tiles > INT32_MAX) {
        snprintf(message, message_size, "grouped_mm: %lld output tiles at most, past the %d one launch can hold",
                 (long long)tiles, INT32_MAX);
        return -1;
    }
    config->launch = nvfp4_portable_launch;
    shape->units = shape->grid = (int32_t)tiles;
    shape->bounded_grid = 1;
    return 0;
}

/* The device's pool for grouped_mm's per-call tables. The default pool hands its memory back to the driver at
 * every synchronisation (release threshold 0), so a serving loop that synchronises each step would pay a driver
 * allocation per call; this one keeps what it has held. */
static int table_pool(nvfp4_cuda *cuda, int32_t device, cudaMemPool_t *pool, char *message, size_t message_size) {
    if (!cuda->table_pools[device]) {
        struct cudaMemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = cudaMemAllocationTypePinned;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = device;
        cudaMemPool_t created = NULL;
        uint64_t keep_everything = UINT64_MAX;
        CUDA_CHECK(cudaMemPoolCreate(&created, &props));
        const cudaError_t set = cudaMemPoolSetAttribute(created, cudaMemPoolAttrReleaseThreshold, &keep_everything);
        if (set != cudaSuccess) cudaMemPoolDestroy(created);
        CUDA_CHECK(set);
        cuda->table_pools[device] = created;
    }
    *pool = cuda->table_pools[device];
    return 0;
fail:
    return -1;
}

int nvfp4_cuda_moe_launch(nvfp4_cuda *cuda, const nvfp4_moe_call *call, uintptr_t stream, char *message,
                          size_t message_size) {
    cudaStream_t on = (cudaStream_t)stream;
    nvfp4_group_entry *table = NULL;
    nvfp4_launch_config config;
    nvfp4_moe_call made = *call;
    int previous = 0, status = -1;
    if (moe_launch_shape(cuda, call, &config, message, message_size)) return -1;
    const int streamk = config.launch != nvfp4_portable_launch;
    /* Up to NVFP4_MOE_PREPASS_EXPERTS experts the stream-K pre-pass derives the layout itself and writes the table:
     * no table kernel, one launch fewer in the chain. More take the table kernel, which also writes the schedule's
     * tables. */
    const int derived = streamk && call->experts <= NVFP4_MOE_PREPASS_EXPERTS;
    const size_t table_bytes = sizeof(nvfp4_group_entry) * (size_t)call->experts;
    const size_t bytes = table_bytes + (streamk && !derived ? hopper_device_tables_bytes(call->experts) : 0);
    cudaMemPool_t pool;
    if (enter_device(call->device, &previous, message, message_size)) return -1;
    if (table_pool(cuda, call->device, &pool, message, message_size)) goto fail;
    /* Stream-ordered: the table lives exactly as long as this call's kernels on this stream, under graph capture too.
     * The stream-K kernel's schedule tables follow it (entries are 128 bytes: aligned). */
    CUDA_CHECK(cudaMallocFromPoolAsync((void **)&table, bytes, pool, on));
    if (derived) {
        made.ctas = config.shape.grid;
        config.shape.moe_call = &made;
    } else {
        if (streamk) {
            made.schedule_tables = (uint8_t *)table + table_bytes;
            made.ctas = config.shape.grid;
            config.shape.schedule_tables = made.schedule_tables;
        }
        CUDA_CHECK((cudaError_t)nvfp4_moe_table_launch(&made, table, (void *)stream));
    }
    count_launch(cuda, config.launch);
    CUDA_CHECK((cudaError_t)config.launch(NULL, table, call->experts, &config.shape, (void *)stream));
    status = 0;
fail:
    if (table) {
        const cudaError_t freed = cudaFreeAsync(table, on);
        if (!status && freed != cudaSuccess) {
            snprintf(message, message_size, "CUDA error in cudaFreeAsync: %s (%s)", cudaGetErrorString(freed),
                     cudaGetErrorName(freed));
            status = -1;
        }
    }
    return leave_device(call->device, previous, status, message, message_size);
}

int nvfp4_cuda_read_ints(int32_t device, uintptr_t stream, const int32_t *source, int32_t count,
                         int32_t *host, char *message, size_t message_size) {
    enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    int previous = 0, status = -1;
    if (check_device_index(device, message, message_size) || enter_device(device, &previous, message, message_size))
        return -1;
    CUDA_CHECK(cudaStreamIsCapturing((cudaStream_t)stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) {
        snprintf(message, message_size, "grouped_mm: offsets: the debug check (NVFP4_CHECK_OFFSETS) reads them on the "
                 "host, which a stream under graph capture cannot do; turn it off to capture");
        goto fail;
    }
    CUDA_CHECK(cudaMemcpyAsync(host, source, sizeof(int32_t) * (size_t)count, cudaMemcpyDeviceToHost,
                               (cudaStream_t)stream));
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    status = 0;
fail:
    return leave_device(device, previous, status, message, message_size);
}

int nvfp4_cuda_device_info(int32_t device, nvfp4_device_info *info, char *message, size_t message_size) {
    struct cudaDeviceProp prop;
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0 || device >= count) {
        snprintf(message, message_size, "no CUDA device %d: this machine has %d", device, count);
        return -1;
    }
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->major = prop.major;
    info->minor = prop.minor;
    info->multiprocessors = prop.multiProcessorCount;
    info->l2_bytes = prop.l2CacheSize;
    return 0;
fail:
    return -1;
}

#else /* built without CUDA: the module still validates, but nothing can run. */

static const char no_cuda[] = "nvfp4_group_gemm was built without CUDA (no nvcc at build time); rebuild on a "
                              "machine with the CUDA toolkit";

const int nvfp4_built_with_cuda = 0;

struct nvfp4_cuda {
    nvfp4_cuda_stats stats;
};

nvfp4_cuda *nvfp4_cuda_create(void) { return (nvfp4_cuda *)calloc(1, sizeof(nvfp4_cuda)); }

void nvfp4_cuda_destroy(nvfp4_cuda *cuda) { free(cuda); }

nvfp4_cuda_stats nvfp4_cuda_get_stats(const nvfp4_cuda *cuda) { return cuda->stats; }

void nvfp4_cuda_choose_kernel(nvfp4_cuda *cuda, nvfp4_kernel_choice choice) { (void)cuda, (void)choice; }

int nvfp4_cuda_configure(nvfp4_cuda *cuda, nvfp4_group_entry *entries, const nvfp4_plan *plan,
                         nvfp4_launch_config *config, char *message, size_t message_size) {
    (void)cuda, (void)entries, (void)plan, (void)config;
    snprintf(message, message_size, "%s", no_cuda);
    return -1;
}

int nvfp4_cuda_launch(nvfp4_cuda *cuda, const nvfp4_group_entry *entries, const nvfp4_plan *plan,
                      const nvfp4_launch_config *config, uintptr_t stream, char *message, size_t message_size) {
    (void)cuda, (void)entries, (void)plan, (void)config, (void)stream;
    snprintf(message, message_size, "%s", no_cuda);
    return -1;
}

int nvfp4_cuda_moe_launch(nvfp4_cuda *cuda, const nvfp4_moe_call *call, uintptr_t stream, char *message,
                          size_t message_size) {
    (void)cuda, (void)call, (void)stream;
    snprintf(message, message_size, "%s", no_cuda);
    return -1;
}

int nvfp4_cuda_read_ints(int32_t device, uintptr_t stream, const int32_t *source, int32_t count,
                         int32_t *host, char *message, size_t message_size) {
    (void)device, (void)stream, (void)source, (void)count, (void)host;
    snprintf(message, message_size, "%s", no_cuda);
    return -1;
}

int nvfp4_cuda_device_info(int32_t device, nvfp4_device_info *info, char *message, size_t message_size) {
    (void)device, (void)info;
    snprintf(message, message_size, "%s", no_cuda);
    return -1;
}

#endif
