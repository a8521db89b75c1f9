"""Reading a study file's tables directly, for the benchmarks that count or check what is stored:
the package itself speaks SQL only inside ``study/store``."""
import sqlite3


def sql(study, query: str, params=()) -> list:
    """The rows of ``query`` on the study's file, through a read-only connection of its own."""
    conn = sqlite3.connect(f"file:{study.path}?mode=ro", uri=True)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()
