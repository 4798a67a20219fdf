// torch_bridge.cpp: unpacks a THPVariable into an nvfp4_tensor_desc, and names an entry point's call for
// torch.profiler and NVTX. Everything else is C.
#include "torch_bridge.h"

#include <array>
#include <cstdio>
#include <optional>
#include <utility>

#include <ATen/ops/empty.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/python_variable.h>
#ifdef NVFP4_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace {

// What the planner is told about a dtype or a device: a code and a name for messages, looked up in tables
// (one load each per tensor, where switches cost a chain of compares or an indirect jump).
struct dtype_info {
    nvfp4_dtype code;
    const char *name;  // null: c10's own name
};

constexpr int DTYPES = static_cast<int>(c10::ScalarType::NumOptions);

constexpr std::array<dtype_info, DTYPES> make_dtype_table() {
    std::array<dtype_info, DTYPES> table{};
    for (auto &entry : table) entry = {NVFP4_DTYPE_OTHER, nullptr};
    auto set = [&](c10::ScalarType type, nvfp4_dtype code, const char *name) {
        table[static_cast<int>(type)] = {code, name};
    };
    set(c10::ScalarType::Float4_e2m1fn_x2, NVFP4_DTYPE_FP4X2, "torch.float4_e2m1fn_x2");
    set(c10::ScalarType::Byte, NVFP4_DTYPE_UINT8, "torch.uint8");
    set(c10::ScalarType::Char, NVFP4_DTYPE_OTHER, "torch.int8");
    set(c10::ScalarType::Short, NVFP4_DTYPE_OTHER, "torch.int16");
    set(c10::ScalarType::Int, NVFP4_DTYPE_INT32, "torch.int32");
    set(c10::ScalarType::Long, NVFP4_DTYPE_OTHER, "torch.int64");
    set(c10::ScalarType::Half, NVFP4_DTYPE_FLOAT16, "torch.float16");
    set(c10::ScalarType::BFloat16, NVFP4_DTYPE_BFLOAT16, "torch.bfloat16");
    set(c10::ScalarType::Float, NVFP4_DTYPE_FLOAT32, "torch.float32");
    set(c10::ScalarType::Double, NVFP4_DTYPE_OTHER, "torch.float64");
    set(c10::ScalarType::Bool, NVFP4_DTYPE_OTHER, "torch.bool");
    set(c10::ScalarType::Float8_e4m3fn, NVFP4_DTYPE_FP8_E4M3FN, "torch.float8_e4m3fn");
    set(c10::ScalarType::Float8_e5m2, NVFP4_DTYPE_OTHER, "torch.float8_e5m2");
    set(c10::ScalarType::Float8_e4m3fnuz, NVFP4_DTYPE_OTHER, "torch.float8_e4m3fnuz");
    set(c10::ScalarType::Float8_e5m2fnuz, NVFP4_DTYPE_OTHER, "torch.float8_e5m2fnuz");
    set(c10::ScalarType::ComplexHalf, NVFP4_DTYPE_OTHER, "torch.complex32");
    set(c10::ScalarType::ComplexFloat, NVFP4_DTYPE_OTHER, "torch.complex64");
    set(c10::ScalarType::ComplexDouble, NVFP4_DTYPE_OTHER, "torch.complex128");
    return table;
}

constexpr std::array<dtype_info, DTYPES> dtype_table = make_dtype_table();

struct device_info {
    nvfp4_device_type code;
    const char *name;
};

constexpr int DEVICE_TYPES = c10::COMPILE_TIME_MAX_DEVICE_TYPES;

constexpr std::array<device_info, DEVICE_TYPES> make_device_table() {
    std::array<device_info, DEVICE_TYPES> table{};
    for (auto &entry : table) entry = {NVFP4_DEVICE_OTHER, "a device other than cuda"};
    table[static_cast<int>(c10::DeviceType::CUDA)] = {NVFP4_DEVICE_CUDA, "cuda"};
    table[static_cast<int>(c10::DeviceType::CPU)] = {NVFP4_DEVICE_CPU, "cpu"};
    table[static_cast<int>(c10::DeviceType::Meta)] = {NVFP4_DEVICE_OTHER, "meta"};
    return table;
}

constexpr std::array<device_info, DEVICE_TYPES> device_table = make_device_table();

// What the planner needs to know about one tensor. Sets no Python exception; `message` says why a tensor
// cannot be described.
inline nvfp4_read_status describe(const c10::TensorImpl *impl, nvfp4_tensor_desc *out, char *message,
                                  size_t message_size) {
    // Every call reads ~40 tensors, so this reads only what the planner needs, with inline accessors.
    try {
        if (impl->layout() != c10::kStrided) {
            snprintf(message, message_size, "expected a strided (dense) tensor, got a sparse or other layout");
            return NVFP4_READ_UNSUPPORTED;
        }
        const int type = static_cast<int>(impl->dtype().toScalarType());
        const dtype_info dtype = type >= 0 && type < DTYPES ? dtype_table[type] : dtype_info{NVFP4_DTYPE_OTHER, nullptr};
        out->dtype = dtype.code;
        out->dtype_name = dtype.name ? dtype.name : c10::toString(static_cast<c10::ScalarType>(type));
        out->ndim = static_cast<int32_t>(impl->dim());
        out->sizes = impl->sizes().data();
        out->strides = impl->strides().data();
        const c10::Device device = impl->device();
        const int device_type = static_cast<int>(device.type());
        const device_info where = device_type >= 0 && device_type < DEVICE_TYPES
                                      ? device_table[device_type]
                                      : device_info{NVFP4_DEVICE_OTHER, "a device other than cuda"};
        out->device_type = where.code;
        out->device_type_name = where.name;
        out->device_index = device.index();
        out->data = 0;
        // Only real memory has an address worth reading; other devices are rejected by the planner. Dtypes
        // the callers reject have no address worth computing either.
        const c10::Storage &storage = impl->unsafe_storage();
        if (out->device_type != NVFP4_DEVICE_OTHER && out->dtype != NVFP4_DTYPE_OTHER && storage && storage.data()) {
            const int64_t element_bytes = static_cast<int64_t>(impl->dtype().itemsize());
            out->data = reinterpret_cast<uintptr_t>(static_cast<const char *>(storage.data()) +
                                                    impl->storage_offset() * element_bytes);
        }
        return NVFP4_READ_OK;
    } catch (const c10::Error &e) {
        snprintf(message, message_size, "could not read the tensor: %s", e.what_without_backtrace());
        return NVFP4_READ_UNSUPPORTED;
    } catch (const std::exception &e) {
        snprintf(message, message_size, "could not read the tensor: %s", e.what());
        return NVFP4_READ_UNSUPPORTED;
    }
}

}  // namespace

extern "C" int nvfp4_is_tensor(PyObject *obj) { return THPVariable_Check(obj) ? 1 : 0; }

extern "C" nvfp4_read_status nvfp4_read_tensor(PyObject *obj, nvfp4_tensor_desc *out, char *message,
                                               size_t message_size) {
    if (!THPVariable_Check(obj)) return NVFP4_READ_NOT_A_TENSOR;
    return describe(THPVariable_Unpack(obj).unsafeGetTensorImpl(), out, message, message_size);
}

extern "C" int nvfp4_read_group_tensors(PyObject *const *tensors, nvfp4_tensor_desc *const *out) {
    PyTypeObject *const tensor_type = reinterpret_cast<PyTypeObject *>(THPVariableClass);
    bool exact = tensor_type != nullptr;
    for (int i = 0; i < NVFP4_GROUP_TENSORS; i++) exact &= Py_TYPE(tensors[i]) == tensor_type;
    if (!exact) return 0;
    char message[8];  // unused: the caller re-reads a group that fails here, to word the error
    for (int i = 0; i < NVFP4_GROUP_TENSORS; i++)
        if (describe(THPVariable_Unpack(tensors[i]).unsafeGetTensorImpl(), out[i], message, sizeof message) !=
            NVFP4_READ_OK)
            return 0;
    return 1;
}

namespace {

// body() inside a torch.profiler op called `name` and, in CUDA builds, an NVTX range of that name.
template <typename Body>
auto profiled(const char *name, Body body) -> decltype(body()) {
#ifdef NVFP4_WITH_CUDA
    nvtxRangePushA(name);
#endif
    // The observers torch has registered for this thread; none (the common case) means no op to make. The
    // callbacks catch what they throw, so no C++ exception crosses into the C caller.
    std::optional<at::StepCallbacks> callbacks = at::getStepCallbacksUnlessEmpty(at::RecordScope::FUNCTION);
    decltype(body()) result;
    if (callbacks) {
        at::RecordFunction op(std::move(*callbacks));
        op.before(name);
        result = body();
    } else {
        result = body();
    }
#ifdef NVFP4_WITH_CUDA
    nvtxRangePop();
#endif
    return result;
}

}  // namespace

extern "C" PyObject *nvfp4_profiled_call(const char *name, PyObject *(*body)(PyObject *, PyObject *),
                                        PyObject *module, PyObject *arg) {
    return profiled(name, [&] { return body(module, arg); });
}

extern "C" int nvfp4_profiled_run(const char *name, int (*body)(void *), void *context) {
    return profiled(name, [&] { return body(context); });
}

extern "C" PyObject *nvfp4_new_matrix(int64_t rows, int64_t cols, int bf16, int32_t device) {
    try {
        const at::TensorOptions options =
            at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kHalf).device(at::kCUDA, static_cast<int8_t>(device));
        return THPVariable_Wrap(at::empty({rows, cols}, options));
    } catch (const c10::Error &e) {
        PyErr_Format(PyExc_RuntimeError, "grouped_mm: out: could not allocate the [%lld, %lld] output: %s",
                     static_cast<long long>(rows), static_cast<long long>(cols), e.what_without_backtrace());
        return nullptr;
    }
}
