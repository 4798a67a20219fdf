/* module.c: nvfp4_group_gemm._C, the native entry point.
 *
 * custom_kernel(data) walks the leaderboard's 4-tuple with the CPython C API, reads each tensor
 * through the C++ bridge, lets the planner validate everything and build the group table, asks torch
 * for the current stream of the tensors' device and launches once. Per call it runs no Python code,
 * allocates no tensor (the group buffers live in the module state and only grow), and never
 * synchronises. The GIL is held from start to end, which is what makes the shared buffers safe.
 * Each call is named for profilers (the op nvfp4_group_gemm::custom_kernel and an NVTX range of that
 * name) through the bridge, which costs ~10 ns a call while no profiler runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "moe_args.h"
#include "planner.h"
#include "torch_bridge.h"

#define MESSAGE_BYTES 512

/* The module's name and init function: the package's _C, or a top-level module named by NVFP4_MODULE (the
 * one-file submission's build, python/nvfp4_group_gemm/make_submission.py). */
#ifdef NVFP4_MODULE
#define NVFP4_STRING(x) #x
#define NVFP4_EXPANDED_STRING(x) NVFP4_STRING(x)
#define NVFP4_PASTE(a, b) a##b
#define NVFP4_EXPANDED_PASTE(a, b) NVFP4_PASTE(a, b)
#define NVFP4_MODULE_NAME NVFP4_EXPANDED_STRING(NVFP4_MODULE)
#define NVFP4_MODULE_INIT NVFP4_EXPANDED_PASTE(PyInit_, NVFP4_MODULE)
#else
#define NVFP4_MODULE_NAME "nvfp4_group_gemm._C"
#define NVFP4_MODULE_INIT PyInit__C
#endif

typedef struct module_state {
    PyObject *current_stream;    /* torch._C._cuda_getCurrentRawStream, found at the first launch */
    nvfp4_group_entry *entries;  /* capacity entries each; grown, never shrunk */
    PyObject **outputs;          /* borrowed c tensors of the call in progress */
    Py_ssize_t capacity;
    nvfp4_cuda *cuda;
    PyObject *bfloat16, *float16;  /* torch's dtype objects, grouped_mm's out_dtype; found at its first call */
    PyObject *cpu_grouped_mm;      /* nvfp4_group_gemm.moe.reference: grouped_mm on CPU tensors */
    int check_offsets;             /* grouped_mm's debug check of the offsets (NVFP4_CHECK_OFFSETS) */
} module_state;

static inline module_state *get_state(PyObject *module) { return (module_state *)PyModule_GetState(module); }

static const char *const data_names[4] = {"abc", "sfasfb", "sfasfb_reordered", "problem_sizes"};

/* Items and size of a list or tuple; 0 for anything else. (An empty list's items may be NULL.) */
static int as_sequence(PyObject *obj, PyObject ***items, Py_ssize_t *size) {
    if (!PyList_Check(obj) && !PyTuple_Check(obj)) return 0;
    *size = PySequence_Fast_GET_SIZE(obj);
    *items = PySequence_Fast_ITEMS(obj);
    return 1;
}

/* Raises TypeError "<field>: expected <what>, got <type>[ of length n]" for a bad list/tuple. */
static int bad_sequence(PyObject *obj, const char *field, const char *what) {
    if (PyList_Check(obj) || PyTuple_Check(obj))
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got a %.100s of length %zd", field, what, Py_TYPE(obj)->tp_name,
                     PySequence_Fast_GET_SIZE(obj));
    else
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got %.100s", field, what, Py_TYPE(obj)->tp_name);
    return -1;
}

static int ensure_capacity(module_state *st, Py_ssize_t groups) {
    if (groups <= st->capacity) return 0;
    Py_ssize_t capacity = st->capacity ? st->capacity : 16;
    while (capacity < groups) capacity *= 2;
    nvfp4_group_entry *entries = (nvfp4_group_entry *)PyMem_Realloc(st->entries, sizeof *entries * (size_t)capacity);
    if (entries) st->entries = entries;
    PyObject **outputs = (PyObject **)PyMem_Realloc(st->outputs, sizeof *outputs * (size_t)capacity);
    if (outputs) st->outputs = outputs;
    if (!entries || !outputs) {
        PyErr_NoMemory();
        return -1;
    }
    st->capacity = capacity;
    return 0;
}

static int read_tensor(PyObject *obj, const char *container, Py_ssize_t group, const char *field,
                       nvfp4_tensor_desc *out) {
    char message[256];
    switch (nvfp4_read_tensor(obj, out, message, sizeof message)) {
        case NVFP4_READ_OK: return 0;
        case NVFP4_READ_NOT_A_TENSOR:
            PyErr_Format(PyExc_TypeError, "%s[%zd].%s: expected a torch.Tensor, got %.100s", container, group, field,
                         Py_TYPE(obj)->tp_name);
            return -1;
        default:
            PyErr_Format(PyExc_ValueError, "%s[%zd].%s: %s", container, group, field, message);
            return -1;
    }
}

/* Replaces the exception a size's __index__ raised (any type) by a TypeError naming the field, with the
 * original as its cause: a bad size is the caller's argument error, whatever its __index__ does. */
static int index_failed(PyObject *obj, Py_ssize_t group, int index) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *cause = PyErr_GetRaisedException();
#else
    PyObject *type, *cause, *traceback;
    PyErr_Fetch(&type, &cause, &traceback);
    PyErr_NormalizeException(&type, &cause, &traceback);
    if (cause && traceback) PyException_SetTraceback(cause, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
#endif
    PyErr_Format(PyExc_TypeError, "problem_sizes[%zd][%d]: expected an int, got %.100s whose __index__ raised %R",
                 group, index, Py_TYPE(obj)->tp_name, cause ? cause : Py_None);
    if (cause) {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *raised = PyErr_GetRaisedException();
        PyException_SetCause(raised, cause); /* steals cause */
        PyErr_SetRaisedException(raised);
#else
        PyObject *raised_type, *raised, *raised_traceback;
        PyErr_Fetch(&raised_type, &raised, &raised_traceback);
        PyErr_NormalizeException(&raised_type, &raised, &raised_traceback);
        PyException_SetCause(raised, cause); /* steals cause */
        PyErr_Restore(raised_type, raised, raised_traceback);
#endif
    }
    return -1;
}

/* A size: a Python int or another integer with __index__ (numpy's), but not a bool, and not a
 * tensor, whose value may sit on the GPU and would cost a synchronisation to read. */
static int read_size(PyObject *obj, Py_ssize_t group, int index, int64_t *out) {
    int overflow = 0;
    PyObject *value;
#if PY_VERSION_HEX >= 0x030C0000
    if (PyLong_CheckExact(obj) && PyUnstable_Long_IsCompact((PyLongObject *)obj)) { /* the common case */
        *out = PyUnstable_Long_CompactValue((PyLongObject *)obj);
        return 0;
    }
#endif
    if (PyLong_CheckExact(obj)) { /* kept free of isinstance checks */
        value = Py_NewRef(obj);
    } else if (nvfp4_is_tensor(obj)) {
        PyErr_Format(PyExc_TypeError, "problem_sizes[%zd][%d]: expected an int, got a torch.Tensor", group, index);
        return -1;
    } else if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "problem_sizes[%zd][%d]: expected an int, got %.100s", group, index,
                     Py_TYPE(obj)->tp_name);
        return -1;
    } else if (!(value = PyNumber_Index(obj))) {
        return index_failed(obj, group, index);
    }
    long long size = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow)
        PyErr_Format(PyExc_ValueError, "problem_sizes[%zd][%d]: expected a size that fits 64 bits, got %R", group,
                     index, value);
    Py_DECREF(value);
    if (overflow || (size == -1 && PyErr_Occurred())) return -1;
    *out = size;
    return 0;
}

/* Reads one group's tensors and sizes into `in`, and remembers its c for the result list. */
static int read_group(PyObject *const *containers[4], Py_ssize_t g, nvfp4_group_input *in, PyObject **output) {
    Py_ssize_t size;
    PyObject **abc, **sf, **sizes;
    char field[64];
    if (!as_sequence(containers[0][g], &abc, &size) || size != 3) {
        snprintf(field, sizeof field, "abc[%zd]", g);
        return bad_sequence(containers[0][g], field, "a tuple (a, b, c)");
    }
    if (!as_sequence(containers[2][g], &sf, &size) || size != 2) {
        snprintf(field, sizeof field, "sfasfb_reordered[%zd]", g);
        return bad_sequence(containers[2][g], field, "a tuple (sfa, sfb)");
    }
    if (!as_sequence(containers[3][g], &sizes, &size) || size != 4) {
        snprintf(field, sizeof field, "problem_sizes[%zd]", g);
        return bad_sequence(containers[3][g], field, "a tuple of 4 ints (M, N, K, L)");
    }
    PyObject *const tensors[NVFP4_GROUP_TENSORS] = {abc[0], abc[1], abc[2], sf[0], sf[1]};
    nvfp4_tensor_desc *const descs[NVFP4_GROUP_TENSORS] = {&in->a, &in->b, &in->c, &in->sfa, &in->sfb};
    if (!nvfp4_read_group_tensors(tensors, descs) &&
        (read_tensor(abc[0], "abc", g, "a", &in->a) || read_tensor(abc[1], "abc", g, "b", &in->b) ||
         read_tensor(abc[2], "abc", g, "c", &in->c) || read_tensor(sf[0], "sfasfb_reordered", g, "sfa", &in->sfa) ||
         read_tensor(sf[1], "sfasfb_reordered", g, "sfb", &in->sfb)))
        return -1;
    if (read_size(sizes[0], g, 0, &in->m) || read_size(sizes[1], g, 1, &in->n) || read_size(sizes[2], g, 2, &in->k) ||
        read_size(sizes[3], g, 3, &in->l))
        return -1;
    *output = abc[2];
    return 0;
}

/* Parses and validates a call; on success st->entries holds the table and *num_groups the group count. */
static int plan_call(module_state *st, PyObject *data, nvfp4_plan *plan, Py_ssize_t *num_groups) {
    Py_ssize_t size, groups = 0;
    PyObject **parts;
    if (!as_sequence(data, &parts, &size) || size != 4)
        return bad_sequence(data, "data", "a 4-tuple (abc, sfasfb, sfasfb_reordered, problem_sizes)");
    PyObject *const *containers[4];
    for (int i = 0; i < 4; i++) {
        Py_ssize_t length;
        PyObject **items;
        if (!as_sequence(parts[i], &items, &length)) {
            PyErr_Format(PyExc_TypeError, "data[%d] (%s): expected a list or tuple with one entry per group, got %.100s",
                         i, data_names[i], Py_TYPE(parts[i])->tp_name);
            return -1;
        }
        if (i == 0) groups = length;
        else if (length != groups) {
            PyErr_Format(PyExc_ValueError, "data[%d] (%s): expected %zd entries, one per group of abc, got %zd", i,
                         data_names[i], groups, length);
            return -1;
        }
        containers[i] = items;
    }
    if (groups < 1) {
        PyErr_SetString(PyExc_ValueError, "data[0] (abc): expected at least one group, got none");
        return -1;
    }
    if (groups > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "data[0] (abc): expected fewer than 2^31 groups, got %zd", groups);
        return -1;
    }
    if (ensure_capacity(st, groups)) return -1;

    nvfp4_planner planner;
    nvfp4_group_input group;
    nvfp4_error error;
    nvfp4_status status = NVFP4_OK;
    nvfp4_planner_start(&planner, st->entries);
    for (Py_ssize_t g = 0; g < groups && status == NVFP4_OK; g++) {
        if (read_group(containers, g, &group, &st->outputs[g])) return -1;
        status = nvfp4_planner_add(&planner, &group, &error);
    }
    if (status == NVFP4_OK) status = nvfp4_planner_finish(&planner, plan, &error);
    if (status != NVFP4_OK) {
        PyErr_SetString(status == NVFP4_TYPE_ERROR ? PyExc_TypeError : PyExc_ValueError, error.message);
        return -1;
    }
    *num_groups = groups;
    return 0;
}

/* The raw cudaStream_t torch has current on `device`. torch._C._cuda_getCurrentRawStream is C code
 * that keeps the GIL, so the shared buffers stay ours across the call. */
static int current_stream(module_state *st, int32_t device, uintptr_t *stream) {
    if (!st->current_stream) {
        PyObject *torch_c = PyImport_ImportModule("torch._C");
        if (!torch_c) return -1;
        st->current_stream = PyObject_GetAttrString(torch_c, "_cuda_getCurrentRawStream");
        Py_DECREF(torch_c);
        if (!st->current_stream) {
            PyErr_SetString(PyExc_RuntimeError, "this torch build has no CUDA support (no torch._C._cuda_getCurrentRawStream)");
            return -1;
        }
    }
    PyObject *index = PyLong_FromLong(device);
    if (!index) return -1;
    PyObject *result = PyObject_CallOneArg(st->current_stream, index);
    Py_DECREF(index);
    if (!result) return -1;
    *stream = (uintptr_t)PyLong_AsVoidPtr(result);
    Py_DECREF(result);
    return PyErr_Occurred() ? -1 : 0;
}

/* An int argument that fits a C int; -1 with an exception otherwise. */
static int int_argument(PyObject *obj, const char *name, int *out) {
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (value < INT32_MIN || value > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: expected a value that fits 32 bits, got %ld", name, value);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static PyObject *new_output_list(PyObject **outputs, Py_ssize_t count) {
    PyObject *list = PyList_New(count);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) PyList_SET_ITEM(list, i, Py_NewRef(outputs[i]));
    return list;
}

/* custom_kernel, and without the launch the benchmark's _plan_only (the host cost of a call). */
static PyObject *run_call(PyObject *module, PyObject *data, int launch) {
    module_state *st = get_state(module);
    nvfp4_plan plan;
    nvfp4_launch_config config;
    Py_ssize_t groups;
    uintptr_t stream;
    char message[MESSAGE_BYTES];
    if (plan_call(st, data, &plan, &groups)) return NULL;
    if (plan.total_tiles > 0) {
        if (current_stream(st, plan.device_index, &stream)) return NULL;
        if (nvfp4_cuda_configure(st->cuda, st->entries, &plan, &config, message, sizeof message) ||
            (launch && nvfp4_cuda_launch(st->cuda, st->entries, &plan, &config, stream, message, sizeof message))) {
            PyErr_SetString(PyExc_RuntimeError, message);
            return NULL;
        }
    }
    return new_output_list(st->outputs, groups);
}

static PyObject *launch_call(PyObject *module, PyObject *data) { return run_call(module, data, 1); }

#define CUSTOM_KERNEL_OP "nvfp4_group_gemm::custom_kernel"

static PyObject *custom_kernel(PyObject *module, PyObject *data) {
    return nvfp4_profiled_call(CUSTOM_KERNEL_OP, launch_call, module, data);
}

/* ---- Private entries, for the benchmark and the tests ----
 *
 * Not part of the package's interface (its __init__ exports none of them). bench/bench.py and the host-time
 * experiments in dev/ use _prepare, _launch_prepared and _plan_only to split a call's host time into its
 * parts; the tests and the benchmark use _stats and _set_kernel. Every launch goes through the planner's
 * checks: _launch_prepared launches only a table that _prepare validated. */

#define PREPARED_CAPSULE "nvfp4_group_gemm.prepared"

/* A call planned and configured once (its launch shape included), so that _launch_prepared times the
 * launch alone. It holds a reference to the call's data, so the tensors whose addresses the table holds
 * live as long as it does. */
typedef struct prepared_call {
    PyObject *data;
    nvfp4_plan plan;
    nvfp4_launch_config config;
    uintptr_t stream;
    nvfp4_group_entry entries[];
} prepared_call;

static void free_prepared(PyObject *capsule) {
    prepared_call *call = (prepared_call *)PyCapsule_GetPointer(capsule, PREPARED_CAPSULE);
    if (!call) return;
    Py_XDECREF(call->data);
    PyMem_Free(call);
}

static PyObject *prepare(PyObject *module, PyObject *data) {
    module_state *st = get_state(module);
    nvfp4_plan plan;
    Py_ssize_t groups;
    if (plan_call(st, data, &plan, &groups)) return NULL;
    char message[MESSAGE_BYTES];
    prepared_call *call = (prepared_call *)PyMem_Malloc(sizeof *call + sizeof(nvfp4_group_entry) * (size_t)plan.num_entries);
    if (!call) return PyErr_NoMemory();
    call->plan = plan;
    memcpy(call->entries, st->entries, sizeof(nvfp4_group_entry) * (size_t)plan.num_entries);
    if (plan.total_tiles > 0 &&
        nvfp4_cuda_configure(st->cuda, call->entries, &plan, &call->config, message, sizeof message)) {
        PyErr_SetString(PyExc_RuntimeError, message);
        PyMem_Free(call);
        return NULL;
    }
    if (current_stream(st, plan.device_index, &call->stream)) {
        PyMem_Free(call);
        return NULL;
    }
    call->data = Py_NewRef(data);
    PyObject *capsule = PyCapsule_New(call, PREPARED_CAPSULE, free_prepared);
    if (!capsule) {
        Py_DECREF(call->data);
        PyMem_Free(call);
    }
    return capsule;
}

static PyObject *plan_only(PyObject *module, PyObject *data) { return run_call(module, data, 0); }

/* ---- grouped_mm: the MoE layout (moe_args.h; python/nvfp4_group_gemm/moe.py documents it) ---- */

#define GROUPED_MM_OP "nvfp4_group_gemm::grouped_mm"

static int read_moe_tensor(PyObject *obj, const char *name, nvfp4_tensor_desc *out) {
    char message[256];
    switch (nvfp4_read_tensor(obj, out, message, sizeof message)) {
        case NVFP4_READ_OK: return 0;
        case NVFP4_READ_NOT_A_TENSOR:
            PyErr_Format(PyExc_TypeError, "grouped_mm: %s: expected a torch.Tensor, got %.100s", name,
                         Py_TYPE(obj)->tp_name);
            return -1;
        default:
            PyErr_Format(PyExc_ValueError, "grouped_mm: %s: %s", name, message);
            return -1;
    }
}

/* torch.bfloat16 and torch.float16, looked up once. */
static int find_dtypes(module_state *st) {
    if (st->bfloat16) return 0;
    PyObject *torch = PyImport_ImportModule("torch");
    if (!torch) return -1;
    st->float16 = PyObject_GetAttrString(torch, "float16");
    st->bfloat16 = st->float16 ? PyObject_GetAttrString(torch, "bfloat16") : NULL;
    Py_DECREF(torch);
    return st->bfloat16 ? 0 : -1;
}

/* The debug check: the offsets copied to the host (a synchronisation), then nvfp4_moe_check_offsets. */
static int check_offsets_on_host(const nvfp4_moe_args *args, const nvfp4_moe_shape *shape, uintptr_t stream) {
    char message[MESSAGE_BYTES];
    nvfp4_error error;
    int32_t *ends = (int32_t *)PyMem_Malloc(sizeof(int32_t) * (size_t)shape->experts);
    if (!ends) {
        PyErr_NoMemory();
        return -1;
    }
    int status = nvfp4_cuda_read_ints(shape->device_index, stream, (const int32_t *)args->offsets.data,
                                      shape->experts, ends, message, sizeof message);
    if (status) PyErr_SetString(PyExc_RuntimeError, message);
    else if (nvfp4_moe_check_offsets(ends, shape, &error) != NVFP4_OK) {
        PyErr_SetString(PyExc_ValueError, error.message);
        status = -1;
    }
    PyMem_Free(ends);
    return status;
}

typedef struct grouped_mm_call {
    PyObject *module;
    PyObject *const *args;
    Py_ssize_t nargs;
    PyObject *kwnames;
    PyObject *result;
    nvfp4_moe_call *prepared;    /* non-null: fill it (and *stream) instead of launching (_grouped_mm_prepare) */
    uintptr_t *prepared_stream;
} grouped_mm_call;

/* grouped_mm's whole call, run inside its profiler op: the arguments, their checks (nothing runs unless all
 * pass), then on CUDA tensors the launch on torch's current stream (into `out`, or a new tensor), on CPU tensors
 * the float64 reference. */
static int run_grouped_mm(void *context) {
    static const char *const keywords[3] = {"alpha", "out_dtype", "out"};
    static const char *const names[5] = {"a", "b", "a_scale", "b_scale", "offsets"};
    grouped_mm_call *call = (grouped_mm_call *)context;
    module_state *st = get_state(call->module);
    PyObject *options[3] = {Py_None, NULL, Py_None}; /* alpha, out_dtype, out */
    nvfp4_moe_args args;
    nvfp4_moe_shape shape;
    nvfp4_error error;
    char message[MESSAGE_BYTES];
    uintptr_t stream;
    if (call->nargs != 5) {
        PyErr_Format(PyExc_TypeError, "grouped_mm() takes 5 positional arguments (a, b, a_scale, b_scale, offsets) "
                     "but %zd were given", call->nargs);
        return -1;
    }
    const Py_ssize_t given = call->kwnames ? PyTuple_GET_SIZE(call->kwnames) : 0;
    for (Py_ssize_t i = 0; i < given; i++) {
        PyObject *name = PyTuple_GET_ITEM(call->kwnames, i);
        int j = 0;
        while (j < 3 && PyUnicode_CompareWithASCIIString(name, keywords[j]) != 0) j++;
        if (j == 3) {
            PyErr_Format(PyExc_TypeError, "grouped_mm() got an unexpected keyword argument '%U'", name);
            return -1;
        }
        options[j] = call->args[call->nargs + i];
    }
    if (find_dtypes(st)) return -1;
    if (!options[1] || options[1] == st->bfloat16) args.out_bf16 = 1;
    else if (options[1] == st->float16) args.out_bf16 = 0;
    else {
        PyErr_Format(PyExc_TypeError, "grouped_mm: out_dtype: expected torch.bfloat16 or torch.float16, got %R",
                     options[1]);
        return -1;
    }
    nvfp4_tensor_desc *const required[5] = {&args.a, &args.b, &args.a_scale, &args.b_scale, &args.offsets};
    for (int i = 0; i < 5; i++)
        if (read_moe_tensor(call->args[i], names[i], required[i])) return -1;
    args.has_alpha = options[0] != Py_None;
    args.has_out = options[2] != Py_None;
    if ((args.has_alpha && read_moe_tensor(options[0], "alpha", &args.alpha)) ||
        (args.has_out && read_moe_tensor(options[2], "out", &args.out)))
        return -1;
    const nvfp4_status status = nvfp4_moe_check(&args, &shape, &error);
    if (status != NVFP4_OK) {
        PyErr_SetString(status == NVFP4_TYPE_ERROR ? PyExc_TypeError : PyExc_ValueError, error.message);
        return -1;
    }
    if (shape.device_type == NVFP4_DEVICE_CPU) {
        if (!st->cpu_grouped_mm) {
            PyObject *moe = PyImport_ImportModule("nvfp4_group_gemm.moe");
            if (!moe) return -1;
            st->cpu_grouped_mm = PyObject_GetAttrString(moe, "reference");
            Py_DECREF(moe);
            if (!st->cpu_grouped_mm) return -1;
        }
        PyObject *const reference_args[8] = {call->args[0], call->args[1], call->args[2], call->args[3], call->args[4],
                                             options[0], args.out_bf16 ? st->bfloat16 : st->float16, options[2]};
        call->result = PyObject_Vectorcall(st->cpu_grouped_mm, reference_args, 8, NULL);
        return call->result ? 0 : -1;
    }
    if (current_stream(st, shape.device_index, &stream)) return -1;
    if (st->check_offsets && check_offsets_on_host(&args, &shape, stream)) return -1;
    PyObject *out = args.has_out ? Py_NewRef(options[2])
                                 : nvfp4_new_matrix(shape.tokens, shape.n, args.out_bf16, shape.device_index);
    if (!out) return -1;
    uintptr_t out_data = 0;
    if (!args.has_out) {
        nvfp4_tensor_desc made;
        if (read_moe_tensor(out, "out", &made)) {
            Py_DECREF(out);
            return -1;
        }
        out_data = made.data;
    }
    const nvfp4_moe_call launch = nvfp4_moe_make_call(&args, &shape, out_data);
    if (call->prepared) {
        *call->prepared = launch;
        *call->prepared_stream = stream;
    } else if (nvfp4_cuda_moe_launch(st->cuda, &launch, stream, message, sizeof message)) {
        PyErr_SetString(PyExc_RuntimeError, message);
        Py_DECREF(out);
        return -1;
    }
    call->result = out;
    return 0;
}

static PyObject *grouped_mm(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    grouped_mm_call call = {module, args, PyVectorcall_NARGS(nargs), kwnames, NULL, NULL, NULL};
    return nvfp4_profiled_run(GROUPED_MM_OP, run_grouped_mm, &call) ? NULL : call.result;
}

/* A grouped_mm call checked and resolved once (its kernels' arguments and stream), so that
 * _grouped_mm_launch_prepared times the launch alone: the MoE layout's bare launch. It holds the call's arguments,
 * so the tensors whose addresses it holds live as long as it does. */
#define MOE_PREPARED_CAPSULE "nvfp4_group_gemm.grouped_mm_prepared"

typedef struct moe_prepared {
    PyObject *keep;              /* (args tuple, kwargs dict, out) */
    nvfp4_moe_call call;
    uintptr_t stream;
} moe_prepared;

static void free_moe_prepared(PyObject *capsule) {
    moe_prepared *prepared = (moe_prepared *)PyCapsule_GetPointer(capsule, MOE_PREPARED_CAPSULE);
    if (!prepared) return;
    Py_XDECREF(prepared->keep);
    PyMem_Free(prepared);
}

static PyObject *grouped_mm_prepare(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    moe_prepared *prepared = (moe_prepared *)PyMem_Calloc(1, sizeof *prepared);
    if (!prepared) return PyErr_NoMemory();
    grouped_mm_call call = {module, args, PyVectorcall_NARGS(nargs), kwnames, NULL, &prepared->call,
                            &prepared->stream};
    PyObject *capsule = NULL, *all = NULL;
    if (run_grouped_mm(&call)) goto fail;
    if (!prepared->call.out) {
        PyErr_SetString(PyExc_ValueError, "_grouped_mm_prepare: expected CUDA tensors");
        goto fail;
    }
    all = PyTuple_New(PyVectorcall_NARGS(nargs) + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0) + 1);
    if (!all) goto fail;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(all) - 1; i++) PyTuple_SET_ITEM(all, i, Py_NewRef(args[i]));
    PyTuple_SET_ITEM(all, PyTuple_GET_SIZE(all) - 1, call.result);
    call.result = NULL;
    prepared->keep = all;
    capsule = PyCapsule_New(prepared, MOE_PREPARED_CAPSULE, free_moe_prepared);
    if (capsule) return capsule;
    prepared->keep = NULL;
fail:
    Py_XDECREF(all);
    Py_XDECREF(call.result);
    PyMem_Free(prepared);
    return NULL;
}

static PyObject *grouped_mm_launch_prepared(PyObject *module, PyObject *capsule) {
    moe_prepared *prepared = (moe_prepared *)PyCapsule_GetPointer(capsule, MOE_PREPARED_CAPSULE);
    char message[MESSAGE_BYTES];
    if (!prepared) return NULL;
    if (nvfp4_cuda_moe_launch(get_state(module)->cuda, &prepared->call, prepared->stream, message, sizeof message)) {
        PyErr_SetString(PyExc_RuntimeError, message);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(grouped_mm_doc,
             "grouped_mm(a, b, a_scale, b_scale, offsets, *, alpha=None, out_dtype=torch.bfloat16, out=None)"
             " -> Tensor\n\n"
             "NVFP4 grouped GEMM in the MoE layout: out[rows of expert e] = alpha[e] * (a_e * a_scale_e) @\n"
             "(b[e] * b_scale[e])^T, rounded once to out_dtype, on torch's current stream of a's device (CUDA), or\n"
             "by the float64 reference (CPU). offsets ([E] int32, on the device) are never read by the host.\n"
             "Returns out, or a new [T, N] tensor (rows past offsets[E - 1] unspecified). Raises TypeError /\n"
             "ValueError naming the argument before anything runs. nvfp4_group_gemm.moe documents the layout.");

/* Takes any arguments, as grouped_mm does (vectorcall with keyword names), and does nothing: the benchmark times
 * its own Python function around grouped_mm with this in grouped_mm's place, to take that function out. */
static PyObject *ignore_arguments(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    (void)module, (void)args, (void)nargs, (void)kwnames;
    Py_RETURN_NONE;
}

static PyObject *set_check_offsets(PyObject *module, PyObject *enabled) {
    module_state *st = get_state(module);
    const int value = PyObject_IsTrue(enabled);
    if (value < 0) return NULL;
    PyObject *previous = st->check_offsets ? Py_True : Py_False;
    st->check_offsets = value;
    return Py_NewRef(previous);
}

static PyObject *no_work(PyObject *module, PyObject *arg) {
    (void)module, (void)arg;
    return Py_NewRef(Py_None);
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

/* Nanoseconds a call spends in its profiler naming with no profiler running: `count` named calls of an empty
 * body against `count` direct calls of it through the same kind of pointer, the difference per call. */
static PyObject *scope_cost(PyObject *module, PyObject *count_obj) {
    int count;
    if (int_argument(count_obj, "count", &count)) return NULL;
    if (count <= 0) {
        PyErr_Format(PyExc_ValueError, "count: expected a positive number of calls, got %d", count);
        return NULL;
    }
    PyObject *(*volatile body)(PyObject *, PyObject *) = no_work;
    double start = seconds_now();
    for (int i = 0; i < count; i++) Py_DECREF(body(module, NULL));
    const double direct = seconds_now() - start;
    start = seconds_now();
    for (int i = 0; i < count; i++) Py_DECREF(nvfp4_profiled_call(CUSTOM_KERNEL_OP, body, module, NULL));
    const double named = seconds_now() - start;
    return PyFloat_FromDouble(1e9 * (named - direct) / count);
}

static PyObject *launch_prepared(PyObject *module, PyObject *capsule) {
    prepared_call *call = (prepared_call *)PyCapsule_GetPointer(capsule, PREPARED_CAPSULE);
    char message[MESSAGE_BYTES];
    if (!call) return NULL;
    if (call->plan.total_tiles > 0 && nvfp4_cuda_launch(get_state(module)->cuda, call->entries, &call->plan,
                                                        &call->config, call->stream, message, sizeof message)) {
        PyErr_SetString(PyExc_RuntimeError, message);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *stats(PyObject *module, PyObject *unused) {
    (void)unused;
    nvfp4_cuda_stats s = nvfp4_cuda_get_stats(get_state(module)->cuda);
    return Py_BuildValue("{sKsKsKsKsKsK}", "inline_launches", (unsigned long long)s.inline_launches,
                         "ring_launches", (unsigned long long)s.ring_launches, "ring_waits",
                         (unsigned long long)s.ring_waits, "captured_tables", (unsigned long long)s.captured_tables,
                         "streamk_launches", (unsigned long long)s.streamk_launches, "portable_launches",
                         (unsigned long long)s.portable_launches);
}

/* "auto" (the stream-K Hopper kernel on compute capability 9.0, else the portable one) or "portable" (everywhere):
 * nvfp4_kernel_choice. */
static int set_kernel_choice(module_state *st, const char *choice) {
    nvfp4_kernel_choice kernel;
    if (strcmp(choice, "auto") == 0) kernel = NVFP4_KERNEL_AUTO;
    else if (strcmp(choice, "portable") == 0) kernel = NVFP4_KERNEL_PORTABLE;
    else {
        PyErr_Format(PyExc_ValueError, "kernel choice: expected \"auto\" or \"portable\", got \"%.50s\"",
                     choice);
        return -1;
    }
    nvfp4_cuda_choose_kernel(st->cuda, kernel);
    return 0;
}

static PyObject *set_kernel(PyObject *module, PyObject *choice) {
    const char *text = PyUnicode_Check(choice) ? PyUnicode_AsUTF8(choice) : NULL;
    if (!text) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "_set_kernel: expected a str, got %.100s", Py_TYPE(choice)->tp_name);
        return NULL;
    }
    if (set_kernel_choice(get_state(module), text)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *device_info(PyObject *module, PyObject *index) {
    (void)module;
    nvfp4_device_info info;
    char message[MESSAGE_BYTES];
    int device;
    if (int_argument(index, "index", &device)) return NULL;
    if (nvfp4_cuda_device_info(device, &info, message, sizeof message)) {
        PyErr_SetString(PyExc_RuntimeError, message);
        return NULL;
    }
    return Py_BuildValue("{sssisisisi}", "name", info.name, "major", info.major, "minor", info.minor,
                         "multiprocessors", info.multiprocessors, "l2_bytes", info.l2_bytes);
}

PyDoc_STRVAR(custom_kernel_doc,
             "custom_kernel(data) -> list[Tensor]\n\n"
             "NVFP4 block-scaled grouped GEMM. data = (abc, sfasfb, sfasfb_reordered, problem_sizes); for every\n"
             "group writes c = (a * sfa) @ (b * sfb)^T into abc[i][2], reading the blocked scales of\n"
             "sfasfb_reordered, on torch's current stream of the tensors' device. Returns a new list of the\n"
             "caller's own c tensors. Raises TypeError/ValueError naming the offending field before anything\n"
             "runs, and RuntimeError with CUDA's message when the launch fails.");

static PyMethodDef module_methods[] = {
    {"custom_kernel", custom_kernel, METH_O, custom_kernel_doc},
    {"device_info", device_info, METH_O,
     "device_info(index) -> dict: name, compute capability, multiprocessors and L2 size of a CUDA device."},
    {"_prepare", prepare, METH_O,
     "_prepare(data) -> capsule. Private, for the benchmark: everything custom_kernel does before the launch\n"
     "(parsing, validation, the group table, the kernel family and its schedule, the current stream), done once.\n"
     "The capsule holds a reference to data; rebinding or resizing its tensors afterwards is not checked."},
    {"_launch_prepared", launch_prepared, METH_O,
     "_launch_prepared(capsule) -> None. Private, for the benchmark: the bare launch of a call that _prepare\n"
     "validated, on the stream that was current then (its host cost is custom_kernel's floor)."},
    {"_plan_only", plan_only, METH_O,
     "_plan_only(data) -> list[Tensor]. Private, for the benchmark: custom_kernel without the launch (the host\n"
     "cost of parsing, validation, the table and the launch configuration)."},
    {"grouped_mm", (PyCFunction)(void (*)(void))grouped_mm, METH_FASTCALL | METH_KEYWORDS, grouped_mm_doc},
    {"_grouped_mm_prepare", (PyCFunction)(void (*)(void))grouped_mm_prepare, METH_FASTCALL | METH_KEYWORDS,
     "_grouped_mm_prepare(same arguments as grouped_mm) -> capsule: a CUDA call checked, its output made and its\n"
     "launch resolved, for _grouped_mm_launch_prepared (the benchmark's bare launch)."},
    {"_grouped_mm_launch_prepared", grouped_mm_launch_prepared, METH_O,
     "_grouped_mm_launch_prepared(capsule): launches a call prepared by _grouped_mm_prepare, on its stream."},
    {"_ignore_arguments", (PyCFunction)(void (*)(void))ignore_arguments, METH_FASTCALL | METH_KEYWORDS,
     "_ignore_arguments(*args, **kwargs) -> None. Private, for the benchmark: a call like grouped_mm's that does\n"
     "nothing."},
    {"_set_check_offsets", set_check_offsets, METH_O,
     "_set_check_offsets(enabled) -> bool: grouped_mm's debug check of the offsets on (a synchronisation a call) or\n"
     "off; returns the previous setting. NVFP4_CHECK_OFFSETS=1 turns it on at import."},
    {"_scope_cost", scope_cost, METH_O,
     "_scope_cost(count) -> float. Private, for the benchmark: nanoseconds per call that naming a call for\n"
     "torch.profiler and NVTX costs when no profiler runs (count empty calls named against count unnamed)."},
    {"_stats", stats, METH_NOARGS, "_stats() -> dict: counts of launches by table path and kernel family."},
    {"_set_kernel", set_kernel, METH_O,
     "_set_kernel(\"auto\" | \"portable\"): which kernel family runs from now on (NVFP4_KERNEL sets it at import)."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    module_state *st = get_state(module);
    st->cuda = nvfp4_cuda_create();
    if (!st->cuda) {
        PyErr_NoMemory();
        return -1;
    }
    const char *check = getenv("NVFP4_CHECK_OFFSETS");
    st->check_offsets = check && *check && strcmp(check, "0") != 0;
    const char *choice = getenv("NVFP4_KERNEL");
    if (choice && *choice && set_kernel_choice(st, choice)) return -1;
    if (PyModule_AddIntConstant(module, "TILE_M", NVFP4_TILE_M) ||
        PyModule_AddIntConstant(module, "TILE_N", NVFP4_TILE_N) ||
        PyModule_AddIntConstant(module, "INLINE_CAPACITY", nvfp4_cuda_inline_capacity()) ||
        PyModule_AddIntConstant(module, "GROUP_ENTRY_BYTES", (long)sizeof(nvfp4_group_entry)) ||
        PyModule_AddIntConstant(module, "RING_SLOTS", nvfp4_cuda_ring_slots) ||
        PyModule_AddObjectRef(module, "WITH_CUDA", nvfp4_built_with_cuda ? Py_True : Py_False))
        return -1;
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    module_state *st = get_state(module);
    Py_VISIT(st->current_stream);
    Py_VISIT(st->bfloat16);
    Py_VISIT(st->float16);
    Py_VISIT(st->cpu_grouped_mm);
    return 0;
}

static int module_clear(PyObject *module) {
    module_state *st = get_state(module);
    Py_CLEAR(st->current_stream);
    Py_CLEAR(st->bfloat16);
    Py_CLEAR(st->float16);
    Py_CLEAR(st->cpu_grouped_mm);
    return 0;
}

static void module_free(void *module) {
    module_state *st = get_state((PyObject *)module);
    module_clear((PyObject *)module);
    nvfp4_cuda_destroy(st->cuda);
    st->cuda = NULL;
    PyMem_Free(st->entries);
    PyMem_Free(st->outputs);
}

/* What the module assumes of the interpreter. Its Python objects and buffers live in the module state, one
 * per interpreter that imports it; but the kernel launchers keep process-wide C state (per device: the
 * kernels' function handles and whether their attributes are set), and nothing guards it but the GIL, held
 * by every entry from start to end.
 *  - Py_mod_gil, USED: a free-threaded interpreter turns the GIL back on when it imports the module (unless
 *    told not to, PYTHON_GIL=0), instead of letting two threads race on that state.
 *  - Py_mod_multiple_interpreters, SUPPORTED (not PER_INTERPRETER_GIL_SUPPORTED): a subinterpreter that shares
 *    the main interpreter's GIL may import it, because that one GIL still serialises every call in the
 *    process and the shared state (CUDA handles of the process's contexts) is valid from any interpreter;
 *    a subinterpreter with a GIL of its own gets ImportError, because its calls would race with the others'. */
static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = NVFP4_MODULE_NAME,
    .m_doc = "Native core of nvfp4_group_gemm: one call from the Python tuple to the kernel launch.",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC NVFP4_MODULE_INIT(void) { return PyModuleDef_Init(&module_def); }
