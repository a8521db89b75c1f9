"""The dashboard's data and server (aquasurf dashboard / aquasurf report), read-only on a study."""
import hashlib
import json
import multiprocessing as mp
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import aquasurf_fast as aq
from search_helpers import BASELINES, fake_score

pytest.importorskip("plotly", reason="the dashboard needs the dashboard extra (plotly)")

from aquasurf_fast.cli.commands import main  # noqa: E402
from aquasurf_fast.dashboard import StudyState, make_server, write_report  # noqa: E402
from aquasurf_fast.study.store import StudyError  # noqa: E402

HOSTILE = "<script>alert('x')</script>"


def real_study(path, n_unary=6, strategy="hybrid"):
    """A study of real expressions (so that the page can draw their curves): the baselines and
    binary(unary(x),unary(x)) over a few operators, with synthetic two-layer Fisher CDFs."""
    unary = aq.BENCHMARK_UNARY_OPS[-n_unary:]
    names = [f"{b}(x)" for b in BASELINES] + aq.enumerate_schema(
        "max(unary(x),unary(x))", unary=unary)
    classes = aq.equivalence_classes(names)
    out = aq.output_features([c[0] for c in classes])
    keep = np.isfinite(out).all(axis=1)
    classes = [c for c, k in zip(classes, keep) if k]
    rng = np.random.default_rng(0)
    fisher = np.hstack([np.sort(rng.random((len(classes), n)), axis=1) for n in (30, 20)])
    fisher /= fisher.max(axis=1, keepdims=True)
    study = aq.Study(str(path), strategy=strategy, create=True)
    study.add_classes(classes, out[keep])
    study.set_fisher_features([c[0] for c in classes], fisher.astype(np.float32))
    return study


def search(study, n, scores=fake_score, **metrics):
    for _ in range(n):
        for claim in study.suggest(1):
            study.tell(claim, scores(str(claim)), runtime=1.5, **metrics)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("dash") / "s.db")
    study = real_study(path)
    search(study, 12, test_acc=0.5)
    claim = study.suggest(1)[0]  # one running
    yield path, study, str(claim)
    study.close()


def files_digest(path):
    return [hashlib.sha256(open(p, "rb").read()).hexdigest() if os.path.exists(p) else None
            for p in (path, path + "-wal")]


def test_counts_and_pool_match_the_study(searched):
    path, study, _ = searched
    s = StudyState(path).snapshot()["study"]
    c = study.counts()
    assert s["counts"] == {k: c[k] for k in ("done", "running", "pending", "failed")}
    assert s["pool"]["valid"] == c["candidates"] and s["pool"]["todo"] == 0
    assert s["per_hour"] > 0


def test_best_so_far_is_the_running_maximum_in_evaluation_order(searched):
    path, study, _ = searched
    p = StudyState(path).snapshot()["progress"]
    told = sorted((r for r in study.results(members=False) if r["status"] == "done"),
                  key=lambda r: r["eval_index"])
    assert p["score"] == pytest.approx([r["score"] for r in told])
    assert p["best"] == pytest.approx(np.maximum.accumulate([r["score"] for r in told]).tolist())
    assert p["relu"] == pytest.approx(next(r["score"] for r in told if r["name"] == "relu(x)"))


def test_map_places_every_candidate_where_the_strategy_laid_it_out(searched):
    path, study, running = searched
    m = StudyState(path).snapshot()["map"]
    ids, coords, _ = study.prediction_map()
    assert m["coords"] == "layout" and m["n_candidates"] == len(ids)
    assert len(m["trained"]["x"]) + len(m["untrained"]["x"]) + len(m["running"]["x"]) == len(ids)
    assert len(m["trained"]["x"]) == study.counts()["done"]
    assert m["running"]["name"] == [running]
    row = {int(c): i for i, c in enumerate(ids)}[m["trained"]["id"][0]]
    assert (m["trained"]["x"][0], m["trained"]["y"][0]) == pytest.approx(tuple(coords[row]), abs=1e-3)
    assert all(p is not None for p in m["untrained"]["pred"])


def test_next_suggestions_are_what_the_study_ranks_first(searched):
    path, study, _ = searched
    m = StudyState(path).snapshot()["map"]
    assert m["next"]["id"] == study.ranker.ranking(5)[:5]


def test_function_detail_has_curve_derivative_and_layer_cdfs(searched):
    path, study, _ = searched
    class_id = study.store.class_of("relu(x)")[0]
    d = StudyState(path).function(class_id)
    assert d["name"] == "relu(x)" and d["curve"]["y"][-1] == pytest.approx(5.0)
    assert d["curve"]["dy"][0] == 0.0 and d["curve"]["dy"][-1] == 1.0
    assert [len(cdf) for cdf in d["fisher"]] == [30, 20]
    assert StudyState(path).function(10 ** 9) is None


def test_reading_leaves_the_study_file_unchanged(searched):
    path, _, _ = searched
    before = files_digest(path)
    views = StudyState(path)
    views.snapshot()
    views.function(1)
    assert files_digest(path) == before


def _writer(path, n, sleep_s):
    study = aq.Study(path, owner="writer")
    for _ in range(n):
        for claim in study.suggest(1):
            time.sleep(sleep_s)
            study.tell(claim, fake_score(str(claim)))
    study.close()


def test_state_follows_a_search_in_another_process(tmp_path):
    path = str(tmp_path / "live.db")
    real_study(path, strategy="paper").close()
    proc = mp.get_context("spawn").Process(target=_writer, args=(path, 14, 0.05))
    proc.start()
    views, seen = StudyState(path), []
    while proc.is_alive() or not seen:
        snap = views.snapshot()
        seen.append(snap["study"]["counts"]["done"])
        assert len(snap["progress"]["x"]) == seen[-1]
        time.sleep(0.05)
    proc.join(60)
    assert proc.exitcode == 0
    assert seen == sorted(seen)
    final = views.snapshot()
    assert final["study"]["counts"]["done"] == 14
    assert len(final["top"]) == 14 and final["workers"]["workers"][0]["worker"] == "writer"


# -- the server ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(searched):
    srv = make_server(searched[0], port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_server_answers_the_page_and_its_data(server, searched):
    status, body = fetch(server + "/api/state")
    assert status == 200 and json.loads(body)["study"]["counts"]["done"] == 12
    status, body = fetch(server + "/")
    assert status == 200 and b'<script src="plotly.min.js">' in body
    assert fetch(server + "/plotly.min.js")[0] == 200
    status, body = fetch(server + "/api/function?id=1")
    assert status == 200 and json.loads(body)["id"] == 1
    assert fetch(server + "/api/function?id=x")[0] == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "PATCH"])
def test_server_refuses_everything_but_get(server, method):
    assert fetch(server + "/api/state", method)[0] == 405


@pytest.mark.parametrize("path", ["/../s.db", "/%2e%2e/%2e%2e/etc/passwd", "/api/../page.html",
                                  "/page.html", "/..%2fs.db", "//etc/passwd"])
def test_no_request_path_reaches_the_file_system(server, path):
    status, body = fetch(server + path)
    assert status == 404 and body == b"not found\n"


def test_strings_from_the_study_are_escaped(tmp_path):
    path = str(tmp_path / "h.db")
    study = real_study(path)
    study.store.set_meta(task=f"/data/{HOSTILE}/task.py")
    search(study, 9)
    claim = study.suggest(1)[0]
    study.fail(claim, f"Traceback (most recent call last):\nValueError: {HOSTILE} & more")
    study.close()
    page = StudyState(path)
    snap = page.snapshot()
    assert snap["failures"][0]["error"] == f"ValueError: {HOSTILE} & more"
    srv = make_server(path, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        for url in ("/", "/api/state"):
            body = fetch(base + url)[1].decode()
            assert "alert('x')" in body.replace("\\u003c", "<").replace("\\u003e", ">")
            assert HOSTILE not in body and "</script>alert" not in body
    finally:
        srv.shutdown()
        srv.server_close()
    report = tmp_path / "r.html"
    write_report(path, str(report))
    assert HOSTILE not in report.read_text()


def _damaged(tmp_path, kind, source):
    path = str(tmp_path / f"{kind}.db")
    if kind == "missing":
        return path
    if kind == "corrupt":
        data = open(source, "rb").read()
        open(path, "wb").write(data[:100] + os.urandom(len(data) - 100))
        return path
    real_study(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 7" if kind == "newer" else "PRAGMA application_id = 1")
    return path


@pytest.mark.parametrize("kind", ["missing", "corrupt", "newer", "foreign"])
def test_an_unusable_study_gives_one_clear_error(tmp_path, searched, kind, capsys):
    path = _damaged(tmp_path, kind, searched[0])
    with pytest.raises(StudyError):
        StudyState(path).snapshot()
    assert main(["report", path, "--out", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aquasurf report: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_study_damaged_while_served_gives_an_error_page(tmp_path):
    path = str(tmp_path / "later.db")
    real_study(path).close()
    srv = make_server(path, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        open(path, "wb").write(b"not a study any more")
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        status, body = fetch(base + "/")
        assert status == 503 and b"Cannot show the study" in body and b"Traceback" not in body
        status, body = fetch(base + "/api/state")
        assert status == 503 and "not an aquasurf study" in json.loads(body)["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_report_is_one_file_with_everything_inlined(tmp_path, searched):
    out = tmp_path / "report.html"
    assert main(["report", searched[0], "--out", str(out)]) == 0
    text = out.read_text()
    assert "<script src=" not in text and "Plotly" in text
    boot = text.split('<script type="application/json" id="boot">')[1].split("</script>")[0]
    data = json.loads(boot)
    assert data["mode"] == "report" and len(data["state"]["top"]) == 12
    assert all(str(r["id"]) in data["details"] for r in data["state"]["top"])


def test_dashboard_warns_when_listening_beyond_this_machine(monkeypatch, searched, capsys):
    from aquasurf_fast.dashboard import server as server_module

    monkeypatch.setattr(server_module.ThreadingHTTPServer, "serve_forever", lambda self: None)
    server_module.serve(searched[0], host="0.0.0.0", port=0)
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
