"""Running evaluations and featurization jobs: in this process, in worker processes
(``executors``) or as Ray tasks (``ray_executor``, which imports ray when used); the jobs
themselves, the one retry and out-of-memory policy and the one submit/wait loop (``jobs``). How
many threads each worker's numerical work uses, and its memory settings, are ``runtime``'s."""
from .executors import InlineExecutor, ProcessExecutor, default_executor, make_executor

__all__ = ["InlineExecutor", "ProcessExecutor", "default_executor", "make_executor"]
