"""How this process runs numerical work, for every part that runs some (``fisher``, the
executors' workers, the benchmarks): how many threads it uses (``threads``: ``thread_limit``,
``limit_threads``) and its memory (``memory``: ``keep_freed_memory``, ``is_out_of_memory``).

Importing this subpackage imports nothing else; its modules import torch only when called.
"""
