"""What the kernel tests assert must hold whichever vector kernels torch picks for this CPU.

torch selects its float32 kernels by the CPU's instruction set (AVX-512, AVX2, or none), and they
differ at NaN and in the last bits; the comparisons against torch run again under each choice
this CPU can make (``ATEN_CPU_CAPABILITY``), so a test that holds only on one kind of CPU fails
here rather than on a user's machine.
"""
import os
import subprocess
import sys

import pytest
import torch

CAPABILITIES = {"default": 0, "avx2": 1, "avx512": 2}
CPU = CAPABILITIES.get(torch.backends.cpu.get_cpu_capability().lower(), 0)


@pytest.mark.slow
@pytest.mark.parametrize("capability", [c for c, level in CAPABILITIES.items() if level <= CPU])
def test_torch_comparisons_hold_under_every_kernel_choice(capability):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "torch",
                          "test_kernels.py", "test_nn.py"], cwd=here, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
