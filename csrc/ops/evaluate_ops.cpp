#include "ops/evaluate_ops.h"

#include <stdexcept>
#include <string>

#include "cpu/evaluate_cpu.h"
#ifdef AQF_WITH_CUDA
#include "cuda/evaluate_cuda.h"
#endif

namespace aqf {
namespace {

void require_like(const ArrayView& a, const ArrayView& x, const std::vector<int64_t>& shape, const char* what) {
  if (a.dtype != x.dtype || a.device != x.device || a.device_id != x.device_id) {
    throw std::invalid_argument(std::string(what) + " must match x (" + x.describe() + "), got " + a.describe());
  }
  if (a.shape != shape) throw std::invalid_argument(std::string(what) + " has the wrong shape: " + a.describe());
  if (!a.is_contiguous()) throw std::invalid_argument(std::string(what) + " must be contiguous, got " + a.describe());
}

template <class T>
void dispatch(const Program& program, const ArrayView& x, const ArrayView* grad_out, const ArrayView* values,
              const ArrayView* grads, int64_t stream) {
  const T* g = grad_out ? grad_out->ptr<T>() : nullptr;
  T* v = values ? values->ptr<T>() : nullptr;
  T* d = grads ? grads->ptr<T>() : nullptr;
  if (x.device == Device::CPU) {
    evaluate_cpu<T>(program, x.ptr<T>(), x.numel(), g, v, d);
    return;
  }
#ifdef AQF_WITH_CUDA
  evaluate_cuda<T>(program, x.ptr<T>(), x.numel(), g, v, d, stream);
#else
  (void)stream;
  throw std::invalid_argument("x is on a CUDA device but aquasurf_fast was built without CUDA; "
                              "rebuild with nvcc on PATH (AQF_CUDA=1 pip install .) or move x to the CPU");
#endif
}

}  // namespace

void evaluate(const Program& program, const ArrayView& x, const ArrayView* grad_out, const ArrayView* values,
              const ArrayView* grads, int64_t stream) {
  if (x.dtype != DType::F32 && x.dtype != DType::F64) {
    throw std::invalid_argument("x must be float32 or float64, got " + x.describe());
  }
  if (!x.is_contiguous()) throw std::invalid_argument("x must be contiguous, got " + x.describe());
  if (!values && !grads) throw std::invalid_argument("nothing to compute: pass values and/or grads");
  if (grads && !program.with_grad) throw std::invalid_argument("grads need a program compiled with_grad=True");
  std::vector<int64_t> out_shape{program.n_fns};
  out_shape.insert(out_shape.end(), x.shape.begin(), x.shape.end());
  if (grad_out) require_like(*grad_out, x, x.shape, "grad_out");
  if (values) require_like(*values, x, out_shape, "values");
  if (grads) require_like(*grads, x, out_shape, "grads");
  if (program.subs.size() > 65535) throw std::invalid_argument("too many sub-programs (at most 65535)");
  if (x.dtype == DType::F32) {
    dispatch<float>(program, x, grad_out, values, grads, stream);
  } else {
    dispatch<double>(program, x, grad_out, values, grads, stream);
  }
}

bool cuda_available() {
#ifdef AQF_WITH_CUDA
  return cuda_device_available();
#else
  return false;
#endif
}

}  // namespace aqf
