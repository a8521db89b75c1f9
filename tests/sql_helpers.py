"""Reading a study file's tables directly, for the tests that check what is stored on disk: the
package itself speaks SQL only inside ``study/store``. The benchmarks read files the same way, with
the same function (``benchmarks/_study_sql.py``)."""
import os
import sys

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
from _study_sql import sql  # noqa: E402,F401
