"""The train phase's searches on a real Dask cluster (a scheduler and two workers started here on 127.0.0.1) give the local result."""
import subprocess, time

import numpy as np
import pandas as pd
import pytest

from conftest import free_port, tool
from mlops_nb.train import train_candidates


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v", "w"], n)})
    y = pd.Series(np.where(X.a + 0.5 * (X.c == "u") + rng.normal(scale=0.5, size=n) > 0, "yes", "no"))
    schema = {"task": "binary", "features": ["a", "b", "c"],
              "columns": {"a": {"kind": "numeric"}, "b": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
    return X, y, schema


@pytest.fixture(scope="module")
def cluster():
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([tool("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(2)
    for _ in range(2):
        procs.append(subprocess.Popen([tool("dask"), "worker", addr, "--nthreads", "1", "--no-dashboard",
                                       "--host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client
    with Client(addr, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
    yield addr
    for p in reversed(procs):
        p.terminate()
        p.wait(timeout=30)


def test_search_on_dask_equals_local(cluster):
    X, y, schema = _data()
    spaces = {"linear": {"C": [0.1, 1.0, 10.0]}, "random_forest": {"max_depth": [3, 6], "n_estimators": [30]}}
    kw = dict(families=["dummy", "linear", "random_forest"], metric="balanced_accuracy", spaces=spaces, folds=3,
              n_iter=3, seed=7, time_budget_s=600, log=lambda *a: None)
    lines = []
    m_local, chosen_l, res_l, _ = train_candidates(X, y, schema, **kw)
    m_dask, chosen_d, res_d, _ = train_candidates(X, y, schema, scheduler=cluster, **{**kw, "log": lines.append})
    assert any("dask tcp://127.0.0.1" in l and "2 workers" in l for l in lines)
    assert chosen_d == chosen_l
    for f in res_l:
        assert res_d[f]["params"] == res_l[f]["params"], f
        assert res_d[f]["fold_scores"] == pytest.approx(res_l[f]["fold_scores"], abs=1e-12), f
    assert (m_dask.predict(X) == m_local.predict(X)).all()


def test_unreachable_scheduler_is_a_clear_error():
    X, y, schema = _data(100)
    with pytest.raises(ConnectionError, match="train.dask_scheduler: cannot reach tcp://127.0.0.1:9"):
        train_candidates(X, y, schema, ["dummy"], "accuracy", folds=3, scheduler="tcp://127.0.0.1:9", log=lambda *a: None)
