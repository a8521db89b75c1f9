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

// Checks shared by every binding: dtype among the allowed, contiguity, same device.
void require_contiguous(const ArrayView& a, const char* what);
void require_same_device(const ArrayView& a, const ArrayView& b, const char* what_a, const char* what_b);

}  // namespace aqf
