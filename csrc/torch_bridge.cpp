// torch_bridge.cpp: unpacks a THPVariable into an nvfp4_tensor_desc. Everything else is C.
#include "torch_bridge.h"

#include <cstdio>

#include <torch/csrc/autograd/python_variable.h>

namespace {

const char *dtype_name(c10::ScalarType type) {
    switch (type) {
        case c10::ScalarType::Float4_e2m1fn_x2: return "torch.float4_e2m1fn_x2";
        case c10::ScalarType::Byte: return "torch.uint8";
        case c10::ScalarType::Char: return "torch.int8";
        case c10::ScalarType::Short: return "torch.int16";
        case c10::ScalarType::Int: return "torch.int32";
        case c10::ScalarType::Long: return "torch.int64";
        case c10::ScalarType::Half: return "torch.float16";
        case c10::ScalarType::BFloat16: return "torch.bfloat16";
        case c10::ScalarType::Float: return "torch.float32";
        case c10::ScalarType::Double: return "torch.float64";
        case c10::ScalarType::Bool: return "torch.bool";
        case c10::ScalarType::Float8_e4m3fn: return "torch.float8_e4m3fn";
        case c10::ScalarType::Float8_e5m2: return "torch.float8_e5m2";
        case c10::ScalarType::Float8_e4m3fnuz: return "torch.float8_e4m3fnuz";
        case c10::ScalarType::Float8_e5m2fnuz: return "torch.float8_e5m2fnuz";
        case c10::ScalarType::ComplexHalf: return "torch.complex32";
        case c10::ScalarType::ComplexFloat: return "torch.complex64";
        case c10::ScalarType::ComplexDouble: return "torch.complex128";
        default: return c10::toString(type);  // c10's own name, e.g. "ComplexFloat"
    }
}

nvfp4_dtype dtype_code(c10::ScalarType type) {
    switch (type) {
        case c10::ScalarType::Float4_e2m1fn_x2: return NVFP4_DTYPE_FP4X2;
        case c10::ScalarType::Byte: return NVFP4_DTYPE_UINT8;
        case c10::ScalarType::Half: return NVFP4_DTYPE_FLOAT16;
        case c10::ScalarType::Float8_e4m3fn: return NVFP4_DTYPE_FP8_E4M3FN;
        default: return NVFP4_DTYPE_OTHER;
    }
}

}  // namespace

extern "C" int nvfp4_is_tensor(PyObject *obj) { return THPVariable_Check(obj) ? 1 : 0; }

extern "C" nvfp4_read_status nvfp4_read_tensor(PyObject *obj, nvfp4_tensor_desc *out, char *message,
                                               size_t message_size) {
    if (!THPVariable_Check(obj)) return NVFP4_READ_NOT_A_TENSOR;
    // Every call reads ~40 tensors, so this reads only what the planner needs, with inline accessors.
    try {
        const c10::TensorImpl *impl = THPVariable_Unpack(obj).unsafeGetTensorImpl();
        if (impl->layout() != c10::kStrided) {
            snprintf(message, message_size, "expected a strided (dense) tensor, got a sparse or other layout");
            return NVFP4_READ_UNSUPPORTED;
        }
        const c10::ScalarType type = impl->dtype().toScalarType();
        out->dtype = dtype_code(type);
        out->dtype_name = dtype_name(type);
        out->ndim = static_cast<int32_t>(impl->dim());
        out->sizes = impl->sizes().data();
        out->strides = impl->strides().data();
        const c10::Device device = impl->device();
        out->device_index = device.index();
        out->data = 0;
        switch (device.type()) {
            case c10::DeviceType::CUDA:
                out->device_type = NVFP4_DEVICE_CUDA;
                out->device_type_name = "cuda";
                break;
            case c10::DeviceType::CPU:
                out->device_type = NVFP4_DEVICE_CPU;
                out->device_type_name = "cpu";
                break;
            case c10::DeviceType::Meta:
                out->device_type = NVFP4_DEVICE_OTHER;
                out->device_type_name = "meta";
                break;
            default:
                out->device_type = NVFP4_DEVICE_OTHER;
                out->device_type_name = "a device other than cuda";
                break;
        }
        // Only real memory has an address worth reading; other devices are rejected by the planner. The
        // element size is the planner's (1 byte, or 2 for fp16): any other dtype is rejected, address unused.
        const c10::Storage &storage = impl->unsafe_storage();
        if (out->device_type != NVFP4_DEVICE_OTHER && storage && storage.data()) {
            const int64_t element_bytes = out->dtype == NVFP4_DTYPE_FLOAT16 ? 2 : 1;
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
