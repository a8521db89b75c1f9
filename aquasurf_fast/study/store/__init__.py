"""A study's storage: one SQLite file that several processes read and write at once.

Tables (``schema.py``): ``meta`` (settings), ``classes`` (one row per equivalence class: canonical
name, fingerprint, features, Fisher pool membership, status, result and current claim),
``functions`` (explicit names), ``spaces``/``space_classes``/``space_names`` (schemas and names
files held without listing their names), ``events`` (an append-only log), ``embeddings`` (the
surrogate's cached embedding), ``arrays`` (the output projection's basis) and ``counts`` (kept by
triggers).

``Store`` is a facade over one part per concern, each given in its constructor what it uses: the
open file (``database.Database``: opening, upgrading, transactions) and the other parts it calls.
The parts: the event log (``events``), the settings, named arrays and counts (``settings``), the
schemas and names files (``space_tables``), the classes and their names (``classes``), the features
read by scope (``feature_columns``, ``scope``), the Fisher pool (``pool``), claims and results
(``claims``), result rows (``result_rows``) and the embedding cache (``embeddings``).
``StudyReader`` (``readonly``) reads a file without writing it, through the same settings part.

The store is the only part of the package that speaks SQL: the others call its named methods and
name sets of classes by ``Scope`` (``tests/test_store_seams.py`` holds the package to that).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .claims import ClaimTables
from .classes import ClassTables
from .database import Database, StudyError, fingerprints, from_blob, remove_study_files, to_blob
from .delegate import delegate
from .embeddings import EmbeddingCache, EmbeddingTable
from .events import EventLog
from .feature_columns import FeatureTables
from .pool import PoolTables
from .result_rows import ResultTables
from .schema import SCHEMA_VERSION
from .scope import Scope, candidate_scope
from .settings import SettingsTables
from .space_tables import SpaceTables


class Store:
    """The SQLite file of one study, opened by one process (open one Store per process); its
    threads may share it. ``path`` ``":memory:"`` holds a study in memory, for tests (see
    ``Database``).

    Each method below names the part that owns it; the parts hold the ``Database`` privately, so
    no caller is handed a way to run SQL."""

    def __init__(self, path: str, create: bool = False, meta: Optional[Mapping[str, Any]] = None):
        self._db = Database(path, create=create, meta=meta)
        self.path = self._db.path
        self._events = EventLog(self._db)
        self._settings = SettingsTables(self._db)
        self._spaces = SpaceTables(self._db)
        self._classes = ClassTables(self._db, self._spaces, self._settings, self._events)
        self._features = FeatureTables(self._db)
        self._pool = PoolTables(self._db, self._settings, self._events)
        self._claims = ClaimTables(self._db, self._events)
        self._results = ResultTables(self._db)
        self._embeddings = EmbeddingTable(self._db)

    # -- the file and its event log ----------------------------------------------------------------

    transaction = delegate("_db", Database.transaction)
    close = delegate("_db", Database.close)
    log = delegate("_events", EventLog.log)
    log_event = delegate("_events", EventLog.log_event)
    log_event_if_changed = delegate("_events", EventLog.log_event_if_changed)
    event_details = delegate("_events", EventLog.event_details)
    recent_events = delegate("_events", EventLog.recent_events)

    # -- settings, named arrays and counts ---------------------------------------------------------

    meta = delegate("_settings", SettingsTables.meta)
    set_meta = delegate("_settings", SettingsTables.set_meta)
    put_meta = delegate("_settings", SettingsTables.put_meta)
    features_version = delegate("_settings", SettingsTables.features_version)
    bump_features_version = delegate("_settings", SettingsTables.bump_features_version)
    get_array = delegate("_settings", SettingsTables.get_array)
    set_array = delegate("_settings", SettingsTables.set_array)
    counts = delegate("_settings", SettingsTables.counts)

    # -- classes and their names -------------------------------------------------------------------

    add_classes = delegate("_classes", ClassTables.add_classes)
    set_output_features = delegate("_classes", ClassTables.set_output_features)
    set_fisher_features = delegate("_classes", ClassTables.set_fisher_features)
    names_by_id = delegate("_classes", ClassTables.names_by_id)
    names_of = delegate("_classes", ClassTables.names_of)
    fingerprint_index = delegate("_classes", ClassTables.fingerprint_index)
    next_class_id = delegate("_classes", ClassTables.next_class_id)
    insert_classes_of_space = delegate("_classes", ClassTables.insert_classes_of_space)
    add_member_counts = delegate("_classes", ClassTables.add_member_counts)
    class_of = delegate("_classes", ClassTables.class_of)
    members = delegate("_classes", ClassTables.members)

    # -- schemas and names files -------------------------------------------------------------------

    bulk_insert = delegate("_spaces", SpaceTables.bulk_insert)
    add_space = delegate("_spaces", SpaceTables.add_space)
    spaces = delegate("_spaces", SpaceTables.spaces)
    n_space_names = delegate("_spaces", SpaceTables.n_space_names)
    put_class_ids = delegate("_spaces", SpaceTables.put_class_ids)
    put_name_hashes = delegate("_spaces", SpaceTables.put_name_hashes)
    index_in_space = delegate("_spaces", SpaceTables.index_in_space)

    # -- features, by scope ------------------------------------------------------------------------

    has_fisher = delegate("_features", FeatureTables.has_fisher)
    fisher_width = delegate("_features", FeatureTables.fisher_width)
    pending_fisher_names = delegate("_features", FeatureTables.pending_fisher_names)
    mark_non_finite_fisher_invalid = delegate("_features",
                                              FeatureTables.mark_non_finite_fisher_invalid)
    fisher_failure_reasons = delegate("_features", FeatureTables.fisher_failure_reasons)
    valid_fisher_features = delegate("_features", FeatureTables.valid_fisher_features)
    count_in_scope = delegate("_features", FeatureTables.count_in_scope)
    class_ids_in_scope = delegate("_features", FeatureTables.class_ids_in_scope)
    classes_without_output_features = delegate("_features",
                                               FeatureTables.classes_without_output_features)
    features_in_scope = delegate("_features", FeatureTables.features_in_scope)
    has_pending = delegate("_features", FeatureTables.has_pending)
    classes_with_output_features = delegate("_features",
                                            FeatureTables.classes_with_output_features)
    explicit_members = delegate("_features", FeatureTables.explicit_members)
    explicit_names = delegate("_features", FeatureTables.explicit_names)

    # -- the Fisher pool ---------------------------------------------------------------------------

    pool_size = delegate("_pool", PoolTables.pool_size)
    pool_state = delegate("_pool", PoolTables.pool_state)
    projections = delegate("_pool", PoolTables.projections)
    classes_without_coordinates = delegate("_pool", PoolTables.classes_without_coordinates)
    set_coordinates = delegate("_pool", PoolTables.set_coordinates)
    n_pool_counted = delegate("_pool", PoolTables.n_pool_counted)
    finite_baseline_ids = delegate("_pool", PoolTables.finite_baseline_ids)
    best_finite_classes = delegate("_pool", PoolTables.best_finite_classes)
    write_pool_round = delegate("_pool", PoolTables.write_pool_round)
    pool_progress = delegate("_pool", PoolTables.pool_progress)

    # -- claims and results ------------------------------------------------------------------------

    expire_leases_now = delegate("_claims", ClaimTables.expire_leases_now)
    status_of = delegate("_claims", ClaimTables.status_of)
    claim_pending = delegate("_claims", ClaimTables.claim_pending)
    scores = delegate("_claims", ClaimTables.scores)
    evaluated_and_running = delegate("_claims", ClaimTables.evaluated_and_running)
    renew = delegate("_claims", ClaimTables.renew)
    release = delegate("_claims", ClaimTables.release)
    record_result = delegate("_claims", ClaimTables.record_result)
    record_failure = delegate("_claims", ClaimTables.record_failure)
    result_rows = delegate("_results", ResultTables.result_rows)
    result_rows_after = delegate("_results", ResultTables.result_rows_after)
    best_result_rows = delegate("_results", ResultTables.best_result_rows)

    # -- the embedding cache -----------------------------------------------------------------------

    get_embedding = delegate("_embeddings", EmbeddingTable.get_embedding)
    all_embeddings = delegate("_embeddings", EmbeddingTable.all_embeddings)
    put_embedding = delegate("_embeddings", EmbeddingTable.put_embedding)


__all__ = ["EmbeddingCache", "SCHEMA_VERSION", "Scope", "Store", "StudyError", "candidate_scope",
           "fingerprints", "from_blob", "remove_study_files", "to_blob"]
