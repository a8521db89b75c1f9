"""New candidates placed in the layouts of a grown set (aquasurf_fast.surrogate.placement), and a
study's layouts across growths of its Fisher pool (Ranker.layouts)."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

import aquasurf_fast as aq
from aquasurf_fast.surrogate.embedding import compute_layouts, union_graph
from aquasurf_fast.surrogate.placement import (FRESH_SHARE, can_place, grown_from,
                                               place_in_layouts, place_new)
from bench_helpers import FAKE_TASK


def two_clusters(seed: int, n_per: int = 60):
    """Output features of two far-apart clusters, and which rows are known (all but 3 of each)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 0.1, size=(n_per, 20))
    b = rng.normal(5.0, 0.1, size=(n_per, 20))
    feats = np.vstack([a, b]).astype(np.float32)
    known = np.ones(2 * n_per, dtype=bool)
    known[[0, 1, 2, n_per, n_per + 1, n_per + 2]] = False
    return feats, known


def test_new_candidates_land_in_their_cluster_and_known_ones_stay_bit_for_bit():
    feats, known = two_clusters(0)
    n_per = feats.shape[0] // 2
    base = compute_layouts(feats[known], None, [3, 4])
    graph = union_graph(feats, None, 3)
    placed = place_in_layouts(graph, base, known, [3, 4])
    assert placed.shape == (2, feats.shape[0], 2) and placed.dtype == np.float32
    assert np.array_equal(placed[:, known], base)
    in_a = np.arange(feats.shape[0]) < n_per
    for lay in placed:
        centre_a, centre_b = lay[known & in_a].mean(0), lay[known & ~in_a].mean(0)
        for i in np.flatnonzero(~known):
            near, far = (centre_a, centre_b) if in_a[i] else (centre_b, centre_a)
            assert np.linalg.norm(lay[i] - near) < 0.25 * np.linalg.norm(lay[i] - far)
    # The same seeds give the same places.
    again = place_in_layouts(graph, base, known, [3, 4])
    assert np.array_equal(placed, again)


def test_a_new_candidate_with_only_new_neighbours_follows_them_and_one_with_none_goes_to_the_centre():
    # 0-3 known on a line; 4 is linked to 0 and 1; 5 only to 4; 6 to nobody.
    rows, cols = [4, 0, 4, 1, 5, 4], [0, 4, 1, 4, 4, 5]
    graph = sp.coo_matrix((np.ones(6, dtype=np.float32), (rows, cols)), shape=(7, 7))
    layout = np.array([[0, 0], [2, 0], [4, 0], [6, 0]], dtype=np.float32)
    known = np.array([True] * 4 + [False] * 3)
    from aquasurf_fast.surrogate import placement

    start = placement._initial_places(graph, layout, known)
    assert np.array_equal(start[:4], layout)
    assert np.allclose(start[4], [1, 0]) and np.allclose(start[5], [1, 0])
    assert np.allclose(start[6], layout.mean(0))
    out = place_new(graph, layout, known, 0)
    assert np.array_equal(out[:4], layout) and np.isfinite(out).all()


def test_a_set_without_new_candidates_keeps_its_layout():
    feats, _ = two_clusters(1)
    known = np.ones(feats.shape[0], dtype=bool)
    base = compute_layouts(feats, None, [0])[0]
    assert np.array_equal(place_new(union_graph(feats, None, 0), base, known, 0), base)


@pytest.mark.parametrize("n_fresh, n, ok", [(80, 100, True), (79, 100, False), (100, 100, True),
                                            (0, 0, False), (101, 100, False), (8, 10, True)])
def test_placement_only_while_the_fresh_layout_covers_most_of_the_set(n_fresh, n, ok):
    assert FRESH_SHARE == 0.8
    assert can_place(n_fresh, n) is ok


# -- a study -------------------------------------------------------------------------------------

UNARY = ("zero", "one", "identity", "negative", "abs", "square", "exp", "tanh", "sigmoid", "relu",
         "elu", "softplus", "softsign", "arctan", "swish", "hard_sigmoid")


def test_a_growing_study_places_its_new_candidates_until_they_would_outweigh_the_fresh_layout(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    study = aq.Study(str(tmp_path / "s.db"), task=str(task))
    study.add_schema("binary(unary(x),unary(unary(x)))", unary=UNARY)
    study.featurize(pool=100, progress=False)
    ranker = study.ranker
    ids0, lay0 = ranker.layouts(5)

    def grow(k):  # as a search grows its pool: more classes, featurized, then the layouts
        study.featurize(pool=study.counts()["pool"] - 8 + k, progress=False)
        return ranker.layouts(5)

    ids1, lay1 = grow(10)  # about 10% more: placed
    assert ids1.size > ids0.size
    kept = np.isin(ids1, ids0)
    assert kept.sum() == ids0.size and np.array_equal(lay1[:, kept], lay0)
    assert np.isfinite(lay1).all()
    # Grown past FRESH_SHARE of the last fresh layout (the first set): laid out from scratch.
    ids2, lay2 = grow(int(ids0.size * 0.3))
    assert ids2.size > ids0.size / FRESH_SHARE
    kept = np.isin(ids2, ids1)
    assert not np.array_equal(lay2[:, kept], lay1)
    # That fresh layout is the new base: the next small growth keeps it.
    ids3, lay3 = grow(5)
    kept = np.isin(ids3, ids2)
    assert kept.sum() == ids2.size and np.array_equal(lay3[:, kept], lay2)
    # The log tells placements from layouts made from scratch, and status counts them.
    embeds = [json.loads(e[4]) for e in study.events(50) if e[1] == "embed"][::-1]  # oldest first
    assert sum("placed" in e for e in embeds) == 2
    assert [e["placed"] for e in embeds if "placed" in e] == [ids1.size - ids0.size, ids3.size - ids2.size]
    from aquasurf_fast.cli.commands import _pool_lines

    line = next(ln for ln in _pool_lines(study) if ln.startswith("embedding"))
    assert "(2 by placing grown candidates in the layouts before)" in line
    # A new process reads the placed layouts from the study file.
    again = aq.Study(str(tmp_path / "s.db")).ranker.layouts(5)
    assert np.array_equal(again[0], ids3) and np.array_equal(again[1], lay3)


def test_grown_from_maps_the_known_candidates_in_the_new_order():
    layouts = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # ids 30, 10, 20
    known, places = grown_from(np.array([30, 10, 20]), layouts, np.array([5, 10, 20, 25, 30]))
    assert known.tolist() == [False, True, True, False, True]
    assert np.array_equal(places, layouts[:, [1, 2, 0]])
    assert grown_from(np.array([30, 10, 20]), layouts, np.array([10, 20, 40])) is None
