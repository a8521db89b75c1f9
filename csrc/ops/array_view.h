// A borrowed, typed view of an n-d array on one device. Kernels and ops see only this; where the
// memory came from (numpy, torch, cupy) is the bindings' business.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aqf {

enum class DType { F32, F64, I32, I64, U8, Other };
enum class Device { CPU, CUDA };

const char* dtype_name(DType dtype);

struct ArrayView {
  void* data = nullptr;
  DType dtype = DType::Other;
  Device device = Device::CPU;
  int device_id = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements, one per dimension

  int64_t numel() const;
  bool is_contiguous() const;  // C order; size-1 and empty dimensions may have any stride
  std::string describe() const;  // e.g. "float32[64, 3] on cpu (non-contiguous)"

  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
};

}  // namespace aqf
