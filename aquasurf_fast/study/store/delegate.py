"""How a facade (``Store``, ``StudyReader``, ``Study``) offers its parts' methods: each method names
the part it calls, so a reader of the class sees where every method lives."""
from __future__ import annotations

import functools


def delegate(part: str, method):
    """A method that calls ``method`` of the part held in the attribute ``part``, with the part's
    signature and docstring (``inspect.signature`` follows ``__wrapped__``)."""
    name = method.__name__

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return getattr(getattr(self, part), name)(*args, **kwargs)

    return call
