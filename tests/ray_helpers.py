"""Evaluations for the Ray tests; importable by Ray's worker processes (the tests put this
directory on their PYTHONPATH)."""
import os
import signal
import time

from search_helpers import fake_score


class DieOnce:
    """The first attempt at each name kills its own worker process, as an OOM kill would."""

    def __init__(self, marker_dir: str):
        self.marker_dir = marker_dir

    def __call__(self, name: str) -> float:
        marker = os.path.join(self.marker_dir, name)
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
        return fake_score(name)


class Sleepy:
    """Never finishes in time."""

    def __call__(self, name: str) -> float:
        time.sleep(600)
        return 0.0


class NeedsGPUs:
    resources = {"num_gpus": 1}

    def __call__(self, name: str) -> float:
        return fake_score(name)


def _load_in_driver_only(driver_pid: int):
    if os.getpid() != driver_pid:
        raise ImportError("No module named 'my_lab_models' (not installed on this node)")
    return LoadsInDriverOnly(driver_pid)


class LoadsInDriverOnly:
    """An evaluate that cannot be unpickled in a Ray worker, as when a node lacks its module."""

    def __init__(self, driver_pid: int):
        self.driver_pid = driver_pid

    def __reduce__(self):
        return _load_in_driver_only, (self.driver_pid,)

    def __call__(self, name: str) -> float:
        return fake_score(name)
