#include "ops/array_view.h"

#include <sstream>

namespace aqf {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    default: return "unsupported dtype";
  }
}

int64_t ArrayView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool ArrayView::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::string ArrayView::describe() const {
  std::ostringstream s;
  s << dtype_name(dtype) << "[";
  for (size_t d = 0; d < shape.size(); ++d) s << (d ? ", " : "") << shape[d];
  s << "] on " << (device == Device::CPU ? "cpu" : "cuda:" + std::to_string(device_id));
  if (!is_contiguous()) s << " (non-contiguous)";
  return s.str();
}

}  // namespace aqf
