"""keep_freed_memory: a block freed and allocated again is reused without faulting its pages in
again, in a process that asked for it, and the user's own malloc settings are left alone."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Four 8 MiB blocks (1M float64 each) are written, freed together, allocated and written again;
# the second write's page faults are counted. By default glibc keeps free space at the top
# of its heap only up to twice the largest block freed (16 MiB), so it hands most of the 32 MiB back
# to the kernel and the second write faults those pages in again, as a Fisher pass's tensors did.
SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from aquasurf_fast.runtime.memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    for _ in range(2):  # the first round settles glibc's adaptive thresholds
        blocks = [np.ones(1_000_000) for _ in range(4)]
        del blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [np.ones(1_000_000) for _ in range(4)]
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def run(mode: str, **env):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0], int(out[1])


def test_a_freed_block_is_reused_without_page_faults():
    applied, faults = run("keep")
    assert applied == "True" and faults < 100
    _, faults_by_default = run("default")
    assert faults_by_default > 1000  # of the 8,192 pages of 4 KiB in 32 MiB


def test_malloc_settings_in_the_environment_are_left_alone():
    applied, _ = run("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert applied == "False"
    applied, _ = run("keep", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")
    assert applied == "False"
