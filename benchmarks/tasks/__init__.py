"""The benchmark suite's tasks: networks and data unlike the built-in tasks' small CNNs on images.

Each module is a task file (``build``, ``fisher_batch``, ``train_eval``) whose docstring gives its
recipe and the command that built its benchmark. They generate their data from a fixed seed and
train on one CPU core in well under a second, so that every class of the benchmark space can be
trained under three seeds on 2 cores in a few hours.
"""
