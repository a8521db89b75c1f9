"""Schema-backed and names-file study spaces: compact storage, lookups, the Fisher pool and its
growth, against the engine's name path (aq.equivalence_classes) on the same names."""
import re
import sqlite3

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast import _C, spaces
from aquasurf_fast.study import space_insert
from aquasurf_fast.cli import main
from aquasurf_fast.expr import canonical_name
from aquasurf_fast.testing.reference import farthest_points_numpy
from aquasurf_fast.defaults import DEFAULT_BASELINES
from bench_helpers import FAKE_TASK
from search_helpers import told_by_workers
from sql_helpers import sql

# 7 x 16 x 16^2 = 28,672 names: tens of thousands, a few seconds end to end.
UNARY = ("zero", "one", "identity", "negative", "abs", "square", "exp", "tanh", "sigmoid", "relu",
         "elu", "softplus", "softsign", "arctan", "swish", "hard_sigmoid")
SCHEMA = "binary(unary(x),unary(unary(x)))"


@pytest.fixture(scope="module")
def names():
    return aq.enumerate_schema(SCHEMA, unary=UNARY)


@pytest.fixture(scope="module")
def engine_classes(names):
    return aq.equivalence_classes(names)


@pytest.fixture
def task(tmp_path):
    path = tmp_path / "task.py"
    path.write_text(FAKE_TASK)
    return str(path)


def schema_study(path, task=None, **kwargs):
    study = aq.Study(str(path), task=task, **kwargs)
    study.add_schema(SCHEMA, unary=UNARY)
    return study


# -- the kernel and its pieces ---------------------------------------------------------------------

@pytest.mark.parametrize("n, d, k, n_seeds", [(1, 3, 5, 0), (500, 8, 40, 0), (3000, 2, 100, 3),
                                               (4097, 8, 60, 0), (9000, 5, 25, 7)])
def test_farthest_points_match_the_reference(n, d, k, n_seeds):
    rng = np.random.default_rng(n)
    points = rng.normal(size=(n, d)).astype(np.float32)
    seeds = rng.choice(n, n_seeds, replace=False) if n_seeds else np.zeros(0, dtype=np.int64)
    first = int(rng.integers(n))
    got = _C.farthest_points(np.ascontiguousarray(points.T), seeds.astype(np.int64), first, k)
    assert got.tolist() == farthest_points_numpy(points, seeds.tolist(), first, k)


def test_farthest_points_ties_duplicates_and_exhaustion():
    # Integer coordinates: exact distances, so ties are real ties and go to the lowest index.
    points = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [2, 2], [1, 1]], dtype=np.float32)
    got = _C.farthest_points(np.ascontiguousarray(points.T), np.zeros(0, dtype=np.int64), 0, 10)
    assert got.tolist() == farthest_points_numpy(points, [], 0, 10) == [0, 3, 1, 2, 5]
    # the duplicate of point 3 is never chosen: it is at distance 0 from a chosen point
    seeded = _C.farthest_points(np.ascontiguousarray(points.T), np.array([3, 4]), 0, 2)
    assert seeded.tolist() == [0, 1]
    assert _C.farthest_points(np.zeros((4, 0), np.float32), np.zeros(0, np.int64), 0, 3).size == 0
    with pytest.raises(ValueError, match="outside"):
        _C.farthest_points(np.ascontiguousarray(points.T), np.array([9]), 0, 2)
    with pytest.raises(ValueError, match="2-D"):
        _C.farthest_points(np.zeros(4, np.float32), np.zeros(0, np.int64), 0, 2)


def test_farthest_points_ignore_non_contiguous_input_layout():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(8, 2000)).astype(np.float32)
    strided = np.asfortranarray(points)
    a = _C.farthest_points(points, np.zeros(0, np.int64), 5, 30)
    b = _C.farthest_points(strided, np.zeros(0, np.int64), 5, 30)
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize("n, d", [(0, 8), (7, 8), (40_000, 8), (300, 1000)])
def test_nearest_rows_match_the_float64_definition_bit_for_bit(n, d):
    from aquasurf_fast.surrogate.coverage import nearest_rows

    rng = np.random.default_rng(n + d)
    points = rng.normal(size=(n, d)).astype(np.float32)
    if n > 10:
        points[5] = points[3]  # a tie: the lower row first
        points[9, 0] = np.nan  # never among the nearest
    target = points[3].copy() if n else rng.normal(size=d).astype(np.float32)
    exclude = rng.random(n) < 0.1
    exclude[[i for i in (3, 5) if i < n]] = False
    for k, mask in ((25, None), (25, exclude), (n + 5, exclude)):
        want = ((points.astype(np.float64) - target.astype(np.float64)) ** 2).sum(axis=1)
        if mask is not None:
            want[mask] = np.inf
        order = [i for i in np.lexsort((np.arange(n), want)) if np.isfinite(want[i])][:k]
        got = nearest_rows(target, points, k, mask)
        assert got.tolist() == order
        if n > 10:
            assert got[:2].tolist() == [3, 5] and 9 not in got.tolist()


@pytest.mark.parametrize("d", [1, 3, 7, 8, 12, 16, 100, 128, 129, 1000])
def test_squared_distances_equal_numpys_float64_sum_bit_for_bit(d):
    from aquasurf_fast.surrogate.coverage import _squared_distances

    rng = np.random.default_rng(d)
    points = (rng.normal(size=(40_000, d)) * rng.lognormal(0, 3, size=d)).astype(np.float32)
    points[::7] *= 1000  # some rows far apart in magnitude
    target = rng.normal(size=d)
    want = ((points.astype(np.float64) - target) ** 2).sum(axis=1)
    got = _squared_distances(points[:, :], target)
    assert got.tobytes() == want.tobytes()
    # A strided view gives the same bits.
    wide = np.zeros((40_000, 2 * d), dtype=np.float32)
    wide[:, ::2] = points
    assert _squared_distances(wide[:, ::2], target).tobytes() == want.tobytes()


def test_nearest_rows_when_the_sampled_rows_are_excluded_or_tied():
    from aquasurf_fast.surrogate.coverage import nearest_rows

    rng = np.random.default_rng(5)
    points = rng.normal(size=(100_000, 8)).astype(np.float32)
    target = points[0].copy()
    exclude = np.zeros(len(points), dtype=bool)
    exclude[::32] = True  # every row the cutoff's sample reads
    points[1:5000:3] = target + 0.5  # thousands of equal distances around the k-th
    for mask in (None, exclude):
        want = ((points.astype(np.float64) - target.astype(np.float64)) ** 2).sum(axis=1)
        if mask is not None:
            want[mask] = np.inf
        for k in (1, 40, 1000, 3000):
            got = nearest_rows(target, points, k, mask)
            assert got.tolist() == np.lexsort((np.arange(len(want)), want))[:k].tolist()


def test_schema_index_inverts_the_enumeration(names):
    space = aq.SchemaSpace(SCHEMA, unary=UNARY)
    for i in np.random.default_rng(0).choice(len(space), 300, replace=False):
        assert space.index(names[i]) == i
    assert space.index(" add( zero(x), one( zero(x)))") == names.index("add(zero(x),one(zero(x)))")
    with pytest.raises(ValueError, match="'gelu' where the schema has one of the 16 unary"):
        space.index("add(gelu(x),one(zero(x)))")
    with pytest.raises(ValueError, match="operators"):
        space.index("add(x,x)")
    with pytest.raises(aq.ParseError):
        space.index("add(x,")


# -- the space in a study --------------------------------------------------------------------------

def test_schema_study_holds_the_classes_of_the_name_path(tmp_path, names, engine_classes):
    study = schema_study(tmp_path / "s.db")
    counts = study.counts()
    assert counts["names"] == len(names) + 8  # and the baselines
    baseline_classes = {study.class_of(f"{b}(x)") for b in DEFAULT_BASELINES}
    assert counts["classes"] == len(engine_classes) + sum(
        1 for b in DEFAULT_BASELINES
        if study.members(f"{b}(x)") == [f"{b}(x)"])
    # No list of names in the file: the space is one row and its class ids.
    assert sql(study, "SELECT count(*) FROM functions")[0][0] == 8
    assert sql(study, "SELECT count(*) FROM classes WHERE out_feat IS NOT NULL")[0][0] <= 8
    rng = np.random.default_rng(0)
    for k in rng.choice(len(engine_classes), 60, replace=False):
        group = engine_classes[k]
        cls = study.class_of(group[-1])
        assert all(study.class_of(n) == cls for n in group)
        members = study.members(group[0])
        assert [m for m in members if m in set(group)] == group  # every member, in space order
        assert set(members) - set(group) <= {f"{b}(x)" for b in DEFAULT_BASELINES}
    assert study.class_of("tanh(x)") == "tanh(x)" and "tanh(x)" in baseline_classes


def test_lookups_of_names_outside_the_space_and_bad_names(tmp_path, capsys):
    study = schema_study(tmp_path / "s.db")
    with pytest.raises(aq.StudyError, match="not in this study's search space"):
        study.class_of("add(gelu(x),one(x))")
    with pytest.raises(aq.ParseError, match="position"):
        study.class_of("add(x,")
    code = main(["members", str(tmp_path / "s.db"), "add(foo(x),x)"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "unknown operator 'foo'" in err


def test_init_refuses_a_bad_schema_in_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "s.db"
    code = main(["init", str(path), "--schema", "binary(unary(x)", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "position" in err and not path.exists()
    code = main(["init", str(path), "--schema", "binary(unary(x),x)", "--unary", "relu,nope"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "nope" in err and not path.exists()


def test_names_file_streams_in_chunks_and_matches_the_name_path(tmp_path, monkeypatch, names,
                                                                 engine_classes):
    monkeypatch.setattr(spaces, "CHUNK", 1000)  # many chunks: class ids cross chunk boundaries
    monkeypatch.setattr(space_insert, "CHUNK", 1000)
    rng = np.random.default_rng(2)
    picked = [names[i] for i in rng.choice(len(names), 6000, replace=False)]
    lines = ["# a comment", ""] + [p if k % 3 else f"  {p}  # note" for k, p in enumerate(picked)]
    lines += [picked[0], picked[1].replace(",", ", ")]  # duplicates, one spelt differently
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines) + "\n")
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_names_file(str(path))
    classes = aq.equivalence_classes(picked)
    assert study.counts()["names"] == len(picked) + 8
    for group in classes[:200]:
        assert {study.class_of(n) for n in group} == {study.class_of(group[0])}
        assert [m for m in study.members(group[0]) if m in set(group)] == group
    assert len({study.class_of(g[0]) for g in classes}) == len(classes)
    with pytest.raises(aq.StudyError, match="not in this study's search space"):
        study.class_of(next(n for n in names if n not in set(picked)))
    path.write_text("\n".join(lines[:-5]) + "\n")  # the file changes after init
    with pytest.raises(aq.StudyError, match="changed since"):
        study.members(picked[3])


@pytest.mark.parametrize("seed", range(6))
def test_schema_overlap_is_the_intersection_of_the_name_sets(seed):
    rng = np.random.default_rng(seed)
    shapes = ["binary(unary(x),unary(x))", "binary(unary(x),x)", "unary(binary(x,unary(x)))"]

    def space():
        shape = shapes[rng.integers(2)] if seed else shapes[0]
        return aq.SchemaSpace(shape, unary=list(rng.choice(UNARY, rng.integers(1, 6), replace=False)),
                              binary=list(rng.choice(["add", "mul", "max", "sub"],
                                                     rng.integers(1, 4), replace=False)))

    a, b = space(), space()
    theirs = set(b)
    expected = [i for i, name in enumerate(a) if name in theirs]
    np.testing.assert_array_equal(a.overlap(b), np.array(expected, dtype=np.int64))
    np.testing.assert_array_equal(a.overlap(a), np.arange(len(a)))
    assert a.overlap(aq.SchemaSpace(shapes[2])).size == 0  # another shape shares no name


ORDERS = [("file", "schema", "schema2"), ("schema", "file", "explicit"),
          ("explicit", "schema2", "schema"), ("schema", "schema"), ("explicit", "file", "schema2")]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_spaces_added_in_any_order_hold_each_name_once(tmp_path, order):
    schema = "binary(unary(x),unary(x))"
    ops = {"schema": dict(unary=UNARY[:8], binary=["add", "mul", "max"]),
           "schema2": dict(unary=UNARY[4:12], binary=["add", "sub"])}
    spaces_names = {k: aq.enumerate_schema(schema, **v) for k, v in ops.items()}
    rng = np.random.default_rng(3)
    both = spaces_names["schema"] + spaces_names["schema2"]
    listed = [both[i] for i in rng.choice(len(both), 150, replace=False)]
    lists = {"file": listed[:100] + ["mul(erf(x),tanh(x))", listed[0]],
             "explicit": listed[80:] + ["relu(x)", "add(erf(x),x)"]}
    (tmp_path / "names.txt").write_text("\n".join(lists["file"]) + "\n")
    study = aq.Study(str(tmp_path / "s.db"))
    everything = {f"{b}(x)" for b in DEFAULT_BASELINES}
    for part in order:
        if part == "file":
            study.add_names_file(str(tmp_path / "names.txt"))
        elif part == "explicit":
            study.add_functions(lists["explicit"])
        else:
            study.add_schema(schema, **ops[part])
        everything |= {canonical_name(n) for n in spaces_names.get(part) or lists[part]}
    assert study.counts()["names"] == len(everything)
    assert sql(study, "SELECT sum(n_members) FROM classes")[0][0] == len(everything)
    classes = aq.equivalence_classes(sorted(everything))
    assert len({study.class_of(group[0]) for group in classes}) == len(classes)
    for group in classes:
        members = study.members(group[-1])
        assert sorted(members) == sorted(group)  # each name once, in its one class


def test_names_file_with_a_bad_line_names_the_line(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("relu(x)\ntanh(x)\nadd(x,\n")
    with pytest.raises(aq.StudyError, match=re.escape(f"{path}:3: 'add(x,'")):
        aq.Study(str(tmp_path / "s.db")).add_names_file(str(path))


# -- the pool and the search -----------------------------------------------------------------------

def test_pool_covers_the_space_and_grows_when_asked_again(tmp_path):
    study = schema_study(tmp_path / "s.db")
    joined = study.choose_pool(200)
    assert joined == study.counts()["pool"] and 200 <= joined <= 208
    ids, coords, in_pool = study.store.projections()

    def radius(pool):  # the farthest any class is from its nearest pool member
        return max(np.sqrt(((coords[i:i + 2000, None, :] - pool[None]) ** 2).sum(-1).min(axis=1)).max()
                   for i in range(0, len(coords), 2000))

    # Coverage: the pool leaves no class as far out as random pools of the same size do.
    rng = np.random.default_rng(0)
    random_radius = min(radius(coords[rng.choice(len(coords), in_pool.sum(), replace=False)])
                        for _ in range(5))
    assert radius(coords[in_pool]) < random_radius
    assert study.choose_pool(150) == 0  # already larger
    assert study.choose_pool(300) == 100
    kinds = [e[1] for e in study.events(10)]
    assert kinds.count("pool") == 2


def test_end_to_end_init_pool_search_with_growth_and_resume(tmp_path, task):
    study = schema_study(tmp_path / "s.db", task=task)
    study.featurize(pool=150, progress=False)
    counts = study.counts()

    def invalid():
        return sql(study, "SELECT count(*) FROM classes WHERE pool IS NOT NULL AND "
                                 "fisher_ok = 0")[0][0]

    # Classes whose Fisher features failed were replaced: 150 candidates besides the baselines.
    assert counts["candidates"] == 150 + 8 == counts["pool"] - invalid()
    stats = study.run(budget=20, workers=0, progress=False, grow=12, grow_every=5)
    assert stats["done"] == 20 and stats["grown"] >= 12
    pool = [e for e in study.events(200) if e[1] == "pool"]
    grew = [e for e in pool if '"how": "grow"' in e[4]]
    assert grew and study.counts()["pool"] == counts["pool"] + stats["grown"]
    after = study.counts()  # the grown classes featurized
    assert after["candidates"] == after["pool"] - invalid()
    embeds = [e for e in study.events(500) if e[1] == "embed"]
    assert 1 <= len(embeds) <= 1 + len(grew)  # recomputed only when the pool changed
    # Resume in a new process's view: the results stay, the budget goes on.
    again = aq.Study(str(tmp_path / "s.db"))
    more = again.run(budget=25, workers=0, progress=False, grow=0)
    assert more["done"] == 25 and more["evaluated"] == 5


def test_a_schema_study_without_a_task_searches_its_default_pool(tmp_path):
    from search_helpers import fake_evaluate

    study = aq.Study(str(tmp_path / "s.db"))
    study.add_schema("binary(unary(x),unary(x))", unary=UNARY)
    stats = study.run(fake_evaluate, budget=20, workers=0, progress=False)
    assert stats["done"] == 20
    # Fewer than 10,000 finite classes: the pool is all of them, output features alone embed.
    n_finite = sql(study, "SELECT count(*) FROM classes WHERE out_finite = 1")[0][0]
    assert study.counts()["pool"] == study.counts()["candidates"] == n_finite


def test_a_used_up_pool_grows_instead_of_ending_the_search(tmp_path, task):
    study = schema_study(tmp_path / "s.db", task=task)
    study.featurize(pool=4, progress=False)
    n = study.counts()["candidates"]
    stats = study.run(budget=n + 6, workers=0, progress=False, grow=3, grow_every=100)
    assert stats["done"] == n + 6 and stats["grown"] >= 6


def test_grown_classes_are_the_nearest_to_the_best(tmp_path):
    study = schema_study(tmp_path / "s.db")
    study.choose_pool(100)
    best = study.suggest(1)[0]
    study.tell(best, 0.99)
    added = study.grow(5, featurize=False)
    assert len(added) == 5
    feats = aq.output_features([str(best)] + added)
    others = [n for n, in sql(study, "SELECT canonical FROM classes WHERE pool IS NULL AND "
                                            "out_finite = 1 LIMIT 3000")]
    far = aq.output_features(others)
    d_added = np.sqrt(((feats[1:].astype(np.float64) - feats[0]) ** 2).sum(axis=1)).max()
    d_rest = np.sqrt(((far.astype(np.float64) - feats[0]) ** 2).sum(axis=1))
    assert (d_rest >= d_added).mean() > 0.99  # nearer than nearly every class left out


@pytest.mark.slow
def test_four_processes_on_a_schema_study_never_evaluate_a_class_twice(tmp_path):
    path = str(tmp_path / "s.db")
    study = schema_study(path)
    study.choose_pool(60)
    study.surrogate()
    n = study.counts()["candidates"]
    told = told_by_workers(path, n)
    assert len(told) == len(set(told)) == n
    assert study.counts()["done"] == n


def test_cli_on_a_schema_study(tmp_path, task, capsys):
    path = str(tmp_path / "s.db")
    assert main(["init", path, "--task", task, "--schema", SCHEMA, "--unary", ",".join(UNARY),
                 "--no-progress"]) == 0
    assert main(["featurize", path, "--pool", "100", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "the Fisher pool holds" in out
    assert main(["search", path, "--budget", "12", "--workers", "0", "--grow", "6",
                 "--grow-every", "4", "--no-progress"]) == 0
    assert main(["status", path]) == 0
    out = capsys.readouterr().out
    assert "schema binary(unary(x),unary(unary(x))) (28,672 names" in out
    assert "growth" in out and "embedding computed" in out
    assert main(["members", path, "relu(x)", "--count"]) == 0
    assert "names in the class of relu(x)" in capsys.readouterr().out
    assert main(["export", path, "--csv", str(tmp_path / "all.csv"), "--all"]) == 0
    n_classes = aq.Study(path).counts()["classes"]
    assert f"exported {n_classes:,} classes" in capsys.readouterr().out
    with open(tmp_path / "all.csv") as f:
        assert sum(1 for _ in f) == n_classes + 1


def test_a_version_1_study_is_upgraded_with_its_data(tmp_path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    feat = aq.output_features(["tanh(x)"])[0]
    conn.execute("INSERT INTO classes (canonical, n_members, out_hash, out_feat, out_finite, status, "
                 "score, metrics, eval_index) VALUES ('tanh(x)', 1, 'abc', ?, 1, 'done', 0.7, '{}', 1)",
                 (feat.tobytes(),))
    conn.execute("INSERT INTO functions VALUES ('tanh(x)', 1)")
    conn.execute("PRAGMA application_id = 1095848774")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    study = aq.Study(str(path))
    assert study.best()["name"] == "tanh(x)" and study.best()["score"] == 0.7
    assert sql(study, "PRAGMA user_version")[0][0] == 2
    study.add_functions(["mul(tanh(x),one(x))"])  # merges by the recomputed fingerprint
    assert study.class_of("mul(tanh(x),one(x))") == "tanh(x)"


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('baselines', '["tanh"]'), ('regressor', '"knn"'), ('random_state', '42'),
  ('lease_s', '600.0'), ('max_retries', '2'), ('features_version', '0'), ('order', '"surrogate"'),
  ('task', 'null');
CREATE TABLE classes (id INTEGER PRIMARY KEY, canonical TEXT NOT NULL UNIQUE,
  n_members INTEGER NOT NULL DEFAULT 1, baseline INTEGER NOT NULL DEFAULT 0, out_hash TEXT,
  out_feat BLOB, out_finite INTEGER, fisher_feat BLOB, fisher_ok INTEGER, fisher_reason TEXT,
  status TEXT NOT NULL DEFAULT 'pending', score REAL, metrics TEXT, runtime REAL,
  attempts INTEGER NOT NULL DEFAULT 0, error TEXT, claim_token TEXT, claim_owner TEXT,
  claimed_at REAL, lease_until REAL, finished_at REAL, eval_index INTEGER UNIQUE);
CREATE TABLE functions (name TEXT PRIMARY KEY, class_id INTEGER NOT NULL REFERENCES classes (id));
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL,
  class_id INTEGER, owner TEXT, detail TEXT);
CREATE TABLE embeddings (key TEXT PRIMARY KEY, n INTEGER NOT NULL, coords BLOB NOT NULL,
  created REAL NOT NULL);
"""


def _pool_rounds_are_consistent(study):
    """Each round's event names the classes that joined in it, rounds logged in increasing order."""
    import json

    events = [json.loads(e[4]) for e in reversed(study.events(10_000)) if e[1] == "pool"]
    rounds = [e["round"] for e in events]
    held = dict(sql(study, "SELECT pool, count(*) FROM classes WHERE pool IS NOT NULL "
                                  "GROUP BY pool"))
    assert rounds == sorted(set(rounds))
    assert {e["round"]: e["added"] for e in events} == held


def test_a_pool_round_chosen_while_another_process_adds_one_is_chosen_again(tmp_path, monkeypatch):
    from aquasurf_fast.study import fisher_pool as study_pool

    path = tmp_path / "s.db"
    study = schema_study(path)
    other = aq.Study(str(path))  # another process's view of the same file
    real = study_pool.choose_pool

    def meanwhile(*args):
        monkeypatch.setattr(study_pool, "choose_pool", real)
        other.choose_pool(50)
        return real(*args)

    monkeypatch.setattr(study_pool, "choose_pool", meanwhile)
    study.choose_pool(100)
    n_others = sql(study, "SELECT count(*) FROM classes WHERE pool IS NOT NULL AND "
                                 "baseline = 0")[0][0]
    assert n_others == 100
    _pool_rounds_are_consistent(study)


def test_growth_while_another_process_grows_adds_other_classes(tmp_path, monkeypatch):
    from aquasurf_fast.study import fisher_pool as study_pool

    path = tmp_path / "s.db"
    study = schema_study(path)
    study.choose_pool(100)
    study.tell(study.suggest(1)[0], 0.99)
    other = aq.Study(str(path))
    real = study_pool.take_turns
    theirs = []

    def meanwhile(*args):
        monkeypatch.setattr(study_pool, "take_turns", real)
        theirs.extend(other.pool.grow(5))
        return real(*args)

    monkeypatch.setattr(study_pool, "take_turns", meanwhile)
    size = study.counts()["pool"]
    ours = study.pool.grow(5)
    assert len(ours) == len(theirs) == 5 and not set(ours) & set(theirs)
    assert study.counts()["pool"] == size + 10
    _pool_rounds_are_consistent(study)
