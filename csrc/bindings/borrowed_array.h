// Python arrays -> ArrayView: numpy (buffer protocol), torch CPU tensors (DLPack) and CUDA arrays
// of torch or cupy (__cuda_array_interface__). The returned handle keeps the producer's memory
// alive for as long as the view is used.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>

#include "ops/array_view.h"

namespace aqf {

class BorrowedArray {
 public:
  BorrowedArray(pybind11::handle obj, const char* what);
  ~BorrowedArray();
  BorrowedArray(const BorrowedArray&) = delete;
  BorrowedArray& operator=(const BorrowedArray&) = delete;

  const ArrayView& view() const { return view_; }

 private:
  ArrayView view_;
  pybind11::object keepalive_;
  void* dl_managed_ = nullptr;  // DLManagedTensor* to release, when the view came from DLPack
};

}  // namespace aqf
