"""A study's storage: one SQLite file that several processes read and write at once.

Tables (``schema.py``): ``meta`` (settings), ``classes`` (one row per equivalence class: canonical
name, fingerprint, features, Fisher pool membership, status, result and current claim),
``functions`` (explicit names), ``spaces``/``space_classes``/``space_names`` (schemas and names
files held without listing their names), ``events`` (an append-only log), ``embeddings`` (the
surrogate's cached embedding) and ``arrays`` (the output projection's basis).

``Store`` gathers one part per concern: opening, transactions and the event log (``database``),
the settings and named arrays (``settings``), the classes and their names (``classes``), the
schemas and names files (``space_tables``), the features read by scope (``feature_columns``,
``scope``), the Fisher pool (``pool``), claims and results (``claims``), result rows
(``result_rows``) and the embedding cache (``embeddings``).

The store is the only part of the package that speaks SQL: the others call its named methods and
name sets of classes by ``Scope`` (``tests/test_store_seams.py`` holds the package to that).
"""
from .claims import ClaimTables
from .classes import ClassTables
from .database import Database, StudyError, fingerprints, from_blob, remove_study_files, to_blob
from .embeddings import EmbeddingCache, EmbeddingTable
from .feature_columns import FeatureTables
from .pool import PoolTables
from .result_rows import ResultTables
from .schema import SCHEMA_VERSION
from .scope import Scope, candidate_scope
from .settings import SettingsTables
from .space_tables import SpaceTables


class Store(Database, SettingsTables, ClassTables, SpaceTables, FeatureTables, PoolTables,
            ClaimTables, ResultTables, EmbeddingTable):
    """The SQLite file of one study, opened by one process (open one Store per process)."""


__all__ = ["EmbeddingCache", "SCHEMA_VERSION", "Scope", "Store", "StudyError", "candidate_scope",
           "fingerprints", "from_blob", "remove_study_files", "to_blob"]
