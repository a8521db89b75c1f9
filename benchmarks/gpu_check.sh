#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU where python3 has torch, cupy, cmake,
# ninja, pybind11, pytest and hypothesis (no network needed): build the extension in place with the
# CUDA kernels, run the tests that have CUDA cases (they run when a GPU is present), then the
# expression and Fisher benchmarks and the Fisher candidates per second (bench_batched.py) on the GPU. Usage: bash benchmarks/gpu_check.sh [LOG_DIR]
# (AQF_CUDA_ARCH overrides the GPU architecture, by default the one present.)
set -euo pipefail
cd "$(dirname "$0")/.."
log_dir="${1:-.}"
mkdir -p "$log_dir"
export PYTHONUNBUFFERED=1
python=$(command -v python3)

cmake -S . -B build/gpu -G Ninja -DAQF_CUDA=ON -DPython_EXECUTABLE="$python" \
  -DCMAKE_CUDA_ARCHITECTURES="${AQF_CUDA_ARCH:-native}" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/aquasurf_fast" > "$log_dir/gpu_build.log" 2>&1
cmake --build build/gpu >> "$log_dir/gpu_build.log" 2>&1
"$python" -c "import aquasurf_fast as aq; assert aq.cuda_available(), 'the CUDA build sees no usable GPU'"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$log_dir/gpu_tests.log"

# Run from the repository root so that the in-place build is the one imported. Failing tests do
# not stop the benchmarks (a device's time is short); they set the exit status at the end.
tests_status=0
"$python" -m pytest -q -p no:cacheprovider -rs tests/test_kernels.py tests/test_interop.py tests/test_nn.py \
  tests/test_fisher.py tests/test_fisher_batched.py tests/test_cifar_tasks.py tests/test_devices.py 2>&1 | tee -a "$log_dir/gpu_tests.log" || tests_status=$?
"$python" benchmarks/bench_expr.py --device cuda --skip-large 2>&1 | tee "$log_dir/gpu_bench_expr.log"
"$python" benchmarks/bench_fisher.py --device cuda --repeats 5 --no-curvlinops 2>&1 | tee "$log_dir/gpu_bench_fisher.log"
# Candidates per second on the GPU, one per pass against many per pass (idle only: the passes run
# on the device, and the host's cores are not what is measured).
"$python" benchmarks/bench_batched.py --device cuda --no-busy --classes 256 2>&1 | tee "$log_dir/gpu_bench_batched.log"

# The built-in CIFAR tasks on the GPU: per candidate, the Fisher pass and a training step (float32
# and mixed precision); then each task trained end to end for one epoch on a synthetic data set in
# CIFAR's layout (no download), and a search through the command line with two workers that take
# the GPUs round-robin.
"$python" benchmarks/bench_tasks.py --device cuda --repeats 5 --amp 2>&1 | tee "$log_dir/gpu_bench_tasks.log"
tasks_dir=$(mktemp -d)
"$python" - "$tasks_dir/data" <<'EOF' 2>&1 | tee "$log_dir/gpu_tasks.log"
import sys
sys.path.insert(0, "tests")
from cifar_helpers import write_cifar
import aquasurf_fast as aq
from aquasurf_fast.tasks import load_task
for dataset in ("cifar10", "cifar100"):
    write_cifar(sys.argv[1], dataset, n_train=5000, n_test=1000)
for name in ("cifar100-allcnnc", "cifar10-resnet20", "cifar10-vit"):
    for amp in (False, True):
        r = load_task(name).train_eval(aq.Activation("swish(x)"), epochs=1, device="cuda", amp=amp,
                                       data_dir=sys.argv[1])
        print(name, "amp" if amp else "float32", {k: round(v, 4) for k, v in r.items()}, flush=True)
EOF
"$python" -m aquasurf_fast.cli init "$tasks_dir/s.db" --task cifar10-resnet20 --schema "unary(x)" \
  --unary relu,tanh,elu,swish,softplus,selu,sigmoid,softsign,gelu --no-progress 2>&1 | tee -a "$log_dir/gpu_tasks.log"
"$python" -m aquasurf_fast.cli featurize "$tasks_dir/s.db" --device cuda --data-dir "$tasks_dir/data" \
  --no-progress 2>&1 | tee -a "$log_dir/gpu_tasks.log"
"$python" -m aquasurf_fast.cli search "$tasks_dir/s.db" --device cuda --epochs 1 --amp --budget 10 \
  --workers 2 --grow 0 --data-dir "$tasks_dir/data" --no-progress 2>&1 | tee -a "$log_dir/gpu_tasks.log"
exit "$tests_status"
