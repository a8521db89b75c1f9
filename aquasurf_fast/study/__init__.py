"""The search (SPEC section 6): ``Study``, a search held in one SQLite file (``store/``), and the
parts it is made of: its space, its Fisher pool, its features and surrogate, its search loop and
its results.

Start reading at ``study.py``.
"""
from .store import StudyError
from .study import Claim, Study

__all__ = ["Claim", "Study", "StudyError"]
