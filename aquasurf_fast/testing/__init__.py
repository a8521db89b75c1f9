"""Float64 oracles that the tests compare the kernels against: ``reference`` (every expression
kernel, in numpy and torch) and ``fisher_reference`` (the Fisher spectrum, in plain torch). Not
used by the package at run time."""
