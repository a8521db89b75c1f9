"""The store is the only part of the package that speaks SQL: no SQL text and no ``.query``,
``.execute`` or ``.executemany`` call in any module outside ``study/store/``."""
import ast
import os
import re

import aquasurf_fast

PACKAGE = os.path.dirname(aquasurf_fast.__file__)
STORE = os.path.join("study", "store")

SQL_CALLS = {"query", "execute", "executemany", "executescript"}
# Statements, and conditions on a column ("pool IS NOT NULL", "fisher_ok = 1"): SQL keywords
# are written in capitals in this package, and prose that names them does not read like this.
SQL_TEXT = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|INDEX)"
    r"|PRAGMA \w+|\w+ IS (NOT )?NULL\b|\b[a-z_]+ (=|!=) (\?|\d+|'\w+')(\s|$|\)))")


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE), path


def _sql_in(path):
    """(line, what) of each SQL call and SQL text in the module at ``path``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS):
            found.append((node.lineno, f".{node.func.attr}()"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and SQL_TEXT.search(node.value)):
            found.append((node.lineno, repr(node.value[:60])))
    return found


def test_the_scan_finds_sql():
    sample = os.path.join(PACKAGE, STORE, "pool.py")
    assert _sql_in(sample)


def test_no_sql_outside_the_store():
    offenders = []
    for rel, path in _modules():
        if rel.startswith(STORE + os.sep):
            continue
        offenders += [f"{rel}:{line}: {what}" for line, what in _sql_in(path)]
    assert not offenders, "SQL outside study/store/:\n" + "\n".join(offenders)


def test_the_stores_offer_no_sql_to_their_callers():
    from aquasurf_fast.study.store import Store
    from aquasurf_fast.study.store.readonly import StudyReader

    for cls in (Store, StudyReader):
        assert not SQL_CALLS & {name for name in dir(cls) if not name.startswith("_")}, cls
