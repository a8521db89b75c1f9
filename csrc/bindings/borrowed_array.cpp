#include "bindings/borrowed_array.h"

#include <pybind11/numpy.h>

#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace aqf {
namespace {

// The DLPack ABI (dlpack v0.8 "dltensor" capsules), declared from its published layout.
struct DLDeviceAbi {
  int32_t device_type;  // 1 = CPU, 2 = CUDA, 3 = CUDA host
  int32_t device_id;
};
struct DLDataTypeAbi {
  uint8_t code;  // 0 = int, 1 = uint, 2 = float
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensorAbi {
  void* data;
  DLDeviceAbi device;
  int32_t ndim;
  DLDataTypeAbi dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL means C-contiguous
  uint64_t byte_offset;
};
struct DLManagedTensorAbi {
  DLTensorAbi dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorAbi* self);
};

DType dtype_from_code(int code, int bits) {
  if (code == 2 && bits == 32) return DType::F32;
  if (code == 2 && bits == 64) return DType::F64;
  if (code == 0 && bits == 32) return DType::I32;
  if (code == 0 && bits == 64) return DType::I64;
  if (code == 1 && bits == 8) return DType::U8;
  return DType::Other;
}

DType dtype_from_typestr(const std::string& t) {
  // numpy array-interface type strings, e.g. "<f4"
  if (t.size() < 3 || t[0] == '>') return DType::Other;
  return dtype_from_code(t[1] == 'f' ? 2 : t[1] == 'i' ? 0 : t[1] == 'u' ? 1 : -1,
                         std::stoi(t.substr(2)) * 8);
}

int64_t element_size(DType d) {
  switch (d) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    case DType::U8: return 1;
    default: return 1;
  }
}

std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__module__")).cast<std::string>() + "." +
         py::str(py::type::handle_of(obj).attr("__qualname__")).cast<std::string>();
}

}  // namespace

BorrowedArray::BorrowedArray(py::handle obj, const char* what) {
  if (py::hasattr(obj, "__cuda_array_interface__")) {
    py::dict cai = obj.attr("__cuda_array_interface__");
    py::tuple data = cai["data"];
    view_.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
    view_.device = Device::CUDA;
    view_.dtype = dtype_from_typestr(cai["typestr"].cast<std::string>());
    for (auto s : cai["shape"].cast<py::tuple>()) view_.shape.push_back(s.cast<int64_t>());
    const int64_t item = element_size(view_.dtype);
    if (cai.contains("strides") && !cai["strides"].is_none()) {
      for (auto s : cai["strides"].cast<py::tuple>()) view_.strides.push_back(s.cast<int64_t>() / item);
    }
    keepalive_ = py::reinterpret_borrow<py::object>(obj);
  } else if (py::isinstance<py::array>(obj)) {
    py::array arr = py::reinterpret_borrow<py::array>(obj);
    view_.data = const_cast<void*>(arr.data());
    const auto& dt = arr.dtype();
    const char kind = dt.kind();
    view_.dtype = (kind == 'f' || kind == 'i' || kind == 'u') && dt.byteorder() != '>'
                      ? dtype_from_code(kind == 'f' ? 2 : kind == 'i' ? 0 : 1, static_cast<int>(dt.itemsize()) * 8)
                      : DType::Other;
    const int64_t item = dt.itemsize();
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
      view_.shape.push_back(arr.shape(d));
      view_.strides.push_back(arr.strides(d) / item);
    }
    keepalive_ = arr;
  } else if (py::hasattr(obj, "__dlpack__")) {
    py::capsule cap = obj.attr("__dlpack__")();
    if (std::string(cap.name()) != "dltensor") {
      throw std::invalid_argument(std::string(what) + ": the DLPack capsule of " + type_name(obj) +
                                  " was already consumed");
    }
    auto* managed = static_cast<DLManagedTensorAbi*>(cap.get_pointer());
    PyCapsule_SetName(cap.ptr(), "used_dltensor");
    dl_managed_ = managed;
    const DLTensorAbi& t = managed->dl_tensor;
    view_.data = static_cast<char*>(t.data) + t.byte_offset;
    view_.device = t.device.device_type == 2 ? Device::CUDA : Device::CPU;
    view_.device_id = t.device.device_id;
    view_.dtype = t.dtype.lanes == 1 ? dtype_from_code(t.dtype.code, t.dtype.bits) : DType::Other;
    view_.shape.assign(t.shape, t.shape + t.ndim);
    if (t.strides != nullptr) view_.strides.assign(t.strides, t.strides + t.ndim);
    if (t.device.device_type != 1 && t.device.device_type != 2 && t.device.device_type != 3) {
      throw std::invalid_argument(std::string(what) + ": arrays on DLPack device type " +
                                  std::to_string(t.device.device_type) + " are not supported (CPU or CUDA only)");
    }
  } else {
    throw py::type_error(std::string(what) + ": expected a numpy array, a torch tensor or a cupy array, got " +
                         type_name(obj));
  }
  if (view_.strides.empty() && !view_.shape.empty()) {  // C-contiguous by convention
    view_.strides.resize(view_.shape.size());
    int64_t s = 1;
    for (int d = static_cast<int>(view_.shape.size()) - 1; d >= 0; --d) {
      view_.strides[d] = s;
      s *= view_.shape[d];
    }
  }
}

BorrowedArray::~BorrowedArray() {
  if (dl_managed_ != nullptr) {
    auto* managed = static_cast<DLManagedTensorAbi*>(dl_managed_);
    if (managed->deleter != nullptr) managed->deleter(managed);
  }
}

}  // namespace aqf
