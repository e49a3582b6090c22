"""monge.distributed on a real Dask cluster on loopback: 2 worker processes on 127.0.0.1.

The matrices are compared for exact equality with a plain serial loop of the public solvers
(the batched C solvers give the same bits as one call per problem), including after a worker was
killed mid-run."""
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from distributed import Client, LocalCluster

import monge
from monge.distributed import PartialResultError, map_problems, pairwise

EPS = 0.05


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, processes=True, host="127.0.0.1", threads_per_worker=1,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture
def clouds():
    """Mixed sizes (two shapes batch together, one cloud alone), in 2-D."""
    rng = np.random.default_rng(7)
    sizes = [20, 30, 20, 30, 20, 25, 30, 20, 30, 20]
    return [rng.random((n, 2)) + 0.1 * k for k, n in enumerate(sizes)]


def serial(clouds, method, weights=None, **kw):
    """The reference: one public call per pair i < j (and i == j for 'sinkhorn'), mirrored."""
    N = len(clouds)
    D = np.zeros((N, N))
    theta = monge.random_projections(clouds[0].shape[1], 50, 0)
    w = weights if weights is not None else [None] * N
    for i in range(N):
        for j in range(i, N):
            if i == j and method != "sinkhorn":
                continue
            x, y, a, b = clouds[i], clouds[j], w[i], w[j]
            if method == "emd":
                v = monge.emd(a, b, x=x, y=y, **kw).cost
            elif method == "sinkhorn":
                v = monge.sinkhorn(x, y, a, b, **kw).value
            elif method == "sinkhorn_divergence":
                v = monge.sinkhorn_divergence(x, y, a, b, **kw).value
            else:
                v = monge.sliced_wasserstein(x, y, a, b, projections=theta, **kw)
            D[i, j] = D[j, i] = v
    return D


@pytest.mark.parametrize("method,kw", [("emd", {}), ("sinkhorn", {"eps": EPS}),
                                       ("sinkhorn_divergence", {"eps": EPS}), ("sliced", {})])
def test_pairwise_matches_serial(client, clouds, method, kw):
    D = pairwise(clouds, method, client=client, block=4, verbose=False, **kw)
    ref = serial(clouds, method, **kw)
    assert D.shape == (10, 10)
    np.testing.assert_array_equal(D, ref)
    np.testing.assert_array_equal(D, D.T)
    if method == "sinkhorn":
        # OT_eps(a, a) is not zero: the diagonal is solved, not set
        assert (np.diag(D) > 0).all()
    else:
        np.testing.assert_array_equal(np.diag(D), 0.0)
        off = D[~np.eye(10, dtype=bool)]
        assert (off > 0).all()


def test_pairwise_weights_and_block_sizes(client, clouds):
    """Non-uniform weights; the result does not depend on the task granularity."""
    rng = np.random.default_rng(3)
    weights = []
    for c in clouds:
        w = rng.random(c.shape[0]) + 0.1
        weights.append(w / w.sum())
    ref = serial(clouds, "emd", weights)
    for block in (1, 9, 1000):
        D = pairwise(clouds, "emd", weights, client=client, block=block, verbose=False)
        np.testing.assert_array_equal(D, ref)
    # and the weights matter
    assert not np.allclose(ref, serial(clouds, "emd"))


def test_pairwise_stacked_array_and_options(client):
    rng = np.random.default_rng(1)
    X = rng.random((6, 15, 3))
    D = pairwise(X, "sinkhorn_divergence", eps=0.1, options={"tol": 1e-9}, client=client,
                 verbose=False)
    np.testing.assert_array_equal(D, serial(list(X), "sinkhorn_divergence", eps=0.1, tol=1e-9))


def _kill_when_busy(client, report):
    """Kill (SIGKILL) a worker process as soon as it has tasks in flight."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proc = client.processing()  # one snapshot: a second call may already see the tasks done
        busy = [w for w, keys in proc.items() if keys]
        if busy:
            report["in_flight"] = len(proc[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)
            report["killed"] = busy[0]
            report["t"] = time.monotonic()
            return
        time.sleep(0.005)


def test_worker_killed_mid_run(client):
    rng = np.random.default_rng(11)
    clouds = [rng.random((200, 2)) for _ in range(28)]
    ref = serial(clouds, "emd")
    before = set(client.run(os.getpid).values())
    report = {}
    killer = threading.Thread(target=_kill_when_busy, args=(client, report))
    killer.start()
    D = pairwise(clouds, "emd", client=client, block=4, verbose=False)
    done = time.monotonic()
    killer.join()
    assert "killed" in report and report["in_flight"] >= 1
    assert report["t"] < done  # the worker died while the matrix was being computed
    np.testing.assert_array_equal(D, ref)
    # the nanny restarted the killed worker: a new process
    client.wait_for_workers(2, timeout=60)
    after = set(client.run(os.getpid).values())
    assert len(before - after) == 1


def _die_once(x, y, marker):
    """A solver whose first call kills its worker process (as a crash or an OOM kill would)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return monge.emd(x=x, y=y).cost
    os.close(fd)
    os._exit(1)


def test_task_that_kills_its_worker_is_rerun(client, tmp_path):
    rng = np.random.default_rng(5)
    pairs = [(rng.random((15, 2)), rng.random((15, 2))) for _ in range(24)]
    marker = str(tmp_path / "died")
    problems = [dict(x=x, y=y, marker=marker) for x, y in pairs]
    t0 = time.time()
    out = map_problems(problems, _die_once, client=client, block=1, verbose=False)
    assert os.path.exists(marker)  # one worker did die
    assert out == [monge.emd(x=x, y=y).cost for x, y in pairs]
    # the death was seen by the scheduler after the run had started
    removed = [ev for t, ev in client.get_events("all")
               if isinstance(ev, dict) and ev.get("action") == "remove-worker" and t >= t0]
    assert removed
    # with one problem per task, the dead worker held scattered problems that no other worker
    # had: they were sent again and their tasks resubmitted (Dask cannot recompute scattered data)
    assert any(ev["lost-scattered-tasks"] for ev in removed)
    client.wait_for_workers(2, timeout=60)


def test_bad_clouds_are_named_and_the_rest_completes(client, clouds):
    bad = list(clouds)
    bad[2] = clouds[2].copy()
    bad[2][3, 1] = np.nan
    bad[5] = np.zeros((12, 3))          # wrong dimension
    bad[7] = np.zeros((0, 2))           # no points
    with pytest.raises(PartialResultError) as info:
        pairwise(bad, "emd", client=client, block=4, verbose=False)
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert "clouds[2]: contains NaN or infinity" in msg
    assert "clouds[5]: dimension 3 differs" in msg
    assert "clouds[7]: empty array" in msg
    assert sorted(e.where for e in err.errors) == [(2,), (5,), (7,)]
    D = err.result
    good = [i for i in range(10) if i not in (2, 5, 7)]
    for i in (2, 5, 7):
        assert np.isnan(D[i]).all() and np.isnan(D[:, i]).all()
    ref = serial(clouds, "emd")
    np.testing.assert_array_equal(D[np.ix_(good, good)], ref[np.ix_(good, good)])

    # nothing left to compute: the error still comes, with an all-NaN off-diagonal
    with pytest.raises(PartialResultError, match=r"clouds\[1\]: contains NaN") as info:
        pairwise([clouds[0], bad[2].copy()[::-1] * np.nan], "emd", client=client, verbose=False)
    assert np.isnan(info.value.result[0, 1]) and info.value.result[0, 0] == 0.0


def test_pair_that_fails_inside_a_task(client):
    """The cosine cost is undefined at a zero vector: found by the solver on the worker, reported
    per pair, and every other pair of the same task (one task here) is still computed."""
    rng = np.random.default_rng(2)
    clouds = [rng.random((10, 2)) + 0.5 for _ in range(6)]
    clouds[4][0] = 0.0
    with pytest.raises(PartialResultError) as info:
        pairwise(clouds, "emd", cost="cosine", client=client, block=100, verbose=False)
    err = info.value
    assert sorted(e.where for e in err.errors) == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 5)]
    for e in err.errors:
        i, j = e.where
        assert f"pair ({i}, {j}) (x=clouds[{i}], y=clouds[{j}])" in e.message
        assert "cosine cost is undefined for zero vectors" in e.message
    D = err.result
    good = [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(D[np.ix_(good, good)],
                                  serial([clouds[i] for i in good], "emd", cost="cosine"))
    off = np.arange(6) != 4
    assert np.isnan(D[4, off]).all() and np.isnan(D[off, 4]).all()


def test_map_problems_matches_serial(client):
    """emd problems of two shapes (batched per shape inside a task) and one given as a cost
    matrix; sinkhorn_divergence with gradients; a user function."""
    rng = np.random.default_rng(4)
    problems = [dict(x=rng.random((n, 2)), y=rng.random((n + 3, 2))) for n in (8, 8, 12, 8, 12)]
    problems.append(dict(C=rng.random((5, 6))))
    out = map_problems(problems, "emd", client=client, block=3, verbose=False)
    assert [type(r).__name__ for r in out] == ["EMDResult"] * 6
    for q, r in zip(problems, out):
        s = monge.emd(**q)
        assert r.cost == s.cost
        np.testing.assert_array_equal(r.f, s.f)
        np.testing.assert_array_equal(r.values, s.values)

    div = map_problems(problems[:5], "sinkhorn_divergence", options=dict(eps=EPS, grad=True),
                       client=client, verbose=False)
    for q, r in zip(problems[:5], div):
        s = monge.sinkhorn_divergence(q["x"], q["y"], eps=EPS, grad=True)
        assert r.value == s.value and r.ot_ab == s.ot_ab and r.converged
        np.testing.assert_array_equal(r.grad_x, s.grad_x)
        np.testing.assert_array_equal(r.grad_b, s.grad_b)

    sq = map_problems([(k,) for k in range(7)], lambda k: k * k, client=client, verbose=False)
    assert sq == [k * k for k in range(7)]


def test_map_problems_failures_and_warnings(client):
    rng = np.random.default_rng(6)
    x = rng.random((10, 2))
    problems = [dict(x=x, y=x + 1.0) for _ in range(5)]
    problems[3] = dict(x=x, y=x + 1.0, a=np.full(10, 0.2))    # masses 2 vs 1
    with pytest.raises(PartialResultError) as info:
        map_problems(problems, "emd", client=client, block=5, verbose=False)
    err = info.value
    assert [e.where for e in err.errors] == [(3,)]
    assert "problems[3]: ValueError: a, b: total masses differ" in str(err)
    assert err.result[3] is None
    assert [r.cost for k, r in enumerate(err.result) if k != 3] == [monge.emd(x=x, y=x + 1.0).cost] * 4

    with pytest.warns(monge.ConvergenceWarning, match=r"problems\[1\]: ConvergenceWarning"):
        out = map_problems([dict(x=x, y=x + 1.0, max_iter=1000), dict(x=x, y=x + 1.0, max_iter=1)],
                           "sinkhorn", options=dict(eps=1e-3), client=client, verbose=False)
    assert out[0].converged and not out[1].converged


def test_progress_bar(client, clouds, capfd):
    pairwise(clouds[:4], "sliced", client=client, verbose=True)
    assert "pairwise: 100%" in capfd.readouterr().err
    pairwise(clouds[:4], "sliced", client=client, verbose=False)
    assert capfd.readouterr().err == ""


def test_local_cluster_when_no_client(clouds):
    D = pairwise(clouds[:4], "emd", n_workers=1, verbose=False)
    np.testing.assert_array_equal(D, serial(clouds[:4], "emd"))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(method="wasserstein"), ValueError, "method: unknown value"),
    (dict(method="sinkhorn"), ValueError, "eps: required"),
    (dict(method="emd", eps=0.1), ValueError, "eps: only for the entropic methods"),
    (dict(method="sinkhorn", eps=-1.0), ValueError, "eps: must be a positive number"),
    (dict(method="sliced", cost="euclidean"), ValueError, "cost: 'sliced'"),
    (dict(method="sliced", p=0.5), ValueError, "p: must be a finite number >= 1"),
    (dict(options={"eps": 1.0}), ValueError, "options: eps are set by pairwise"),
    (dict(options=[1]), TypeError, "options: expected a dict"),
    (dict(block=0), ValueError, "block: must be >= 1"),
    (dict(nthreads=1.5), TypeError, "nthreads: expected an integer"),
    (dict(client="tcp://127.0.0.1:1"), TypeError, "client: expected a distributed.Client"),
    (dict(weights=[None]), ValueError, "weights: expected one entry per cloud"),
])
def test_pairwise_argument_errors(clouds, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pairwise(clouds, verbose=False, **kwargs)


def test_argument_errors_clouds_and_problems():
    with pytest.raises(ValueError, match="clouds: need at least 2"):
        pairwise([np.zeros((3, 2))])
    with pytest.raises(TypeError, match="clouds: expected a sequence"):
        pairwise(5)
    with pytest.raises(ValueError, match="clouds: no valid cloud"):
        pairwise([np.full((3, 2), np.nan), np.zeros((0, 2))])
    with pytest.raises(ValueError, match="solver: unknown value"):
        map_problems([{}], "simplex")
    with pytest.raises(TypeError, match="solver: expected one of"):
        map_problems([{}], 3)
    with pytest.raises(TypeError, match=r"problems\[1\]: expected a dict"):
        map_problems([{}, 3], "emd")
    with pytest.raises(ValueError, match="problems: empty"):
        map_problems([], "emd")


def test_import_monge_does_not_import_dask():
    code = "import sys, monge; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_dask_says_how_to_install():
    code = ("import sys; sys.modules['distributed'] = None\n"
            "try:\n    import monge.distributed\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install monge[dask]" in out.stdout


def test_top_level_script_gets_the_guard_advice(tmp_path):
    """pairwise at a script's top level (no __main__ guard): Dask's worker processes re-import the
    script and the local cluster cannot start; the error says to add the guard.  With the guard
    the same script runs."""
    body = ("import numpy as np\nfrom monge.distributed import pairwise\n"
            "clouds = [np.random.default_rng(k).random((30, 2)) for k in range(4)]\n")
    call = 'D = pairwise(clouds, "emd", n_workers=1, verbose=False)\nprint("shape", D.shape)\n'
    bad, good = tmp_path / "top.py", tmp_path / "guarded.py"
    bad.write_text(body + call)
    good.write_text(body + 'if __name__ == "__main__":\n' + "".join("    " + ln + "\n" for ln in call.splitlines()))
    p = subprocess.run([sys.executable, str(bad)], capture_output=True, text=True, timeout=240,
                       cwd=tmp_path)
    assert p.returncode != 0
    assert 'if __name__ == "__main__":' in p.stderr and "monge.distributed:" in p.stderr, p.stderr[-2000:]
    p = subprocess.run([sys.executable, str(good)], capture_output=True, text=True, timeout=240,
                       cwd=tmp_path)
    assert p.returncode == 0 and "shape (4, 4)" in p.stdout, p.stderr[-2000:]
