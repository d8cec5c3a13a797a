"""Fixtures that build a real project in a temporary folder and run the real pipeline in it.

Nothing is mocked: the project is a copy of this repository's files (tracked, plus new ones not
ignored), made a git repository with one commit (dvclive and the lineage need a commit), and the
pipeline runs there through the `mlops-nb` command, DVC and papermill, exactly as a user runs it.
"""
import http.server, json, os, shutil, socket, subprocess, sys, threading, time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    "A command installed next to this Python (the project's virtualenv)."
    p = BIN/name
    return str(p) if p.exists() else name


def project_files(src: Path = REPO) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=src, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.splitlines() if (src/f).is_file()]


def copy_project(dest: Path) -> Path:
    "Copy the project's source files to `dest` and commit them in a new git repository."
    for f in project_files():
        (dest/f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO/f, dest/f)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "test project"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env)
    return dest


def run(cmd, cwd, timeout=900, check=True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "YDATA_PROFILING_NO_ANALYTICS": "True",
           "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", "")}
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-4000:]}")
    return r


def mini_project(project: Path, dest: Path) -> Path:
    "A project folder with what packaging, serving and scoring read: params.yaml, models/package, data/processed."
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(project/"params.yaml", dest/"params.yaml")
    shutil.copytree(project/"models/package", dest/"models/package")
    shutil.copytree(project/"data/processed", dest/"data/processed")
    return dest


def shared_build(tmp_path_factory, name: str, build) -> tuple[Path, dict]:
    """Build `name` once per test session, in a folder every xdist worker sees: the first worker to ask runs
    `build(folder)` (it returns something JSON can hold), the others wait for it on a file lock and reuse the result.
    Tests never work in that folder: each worker takes its own copy (`copy_finished`)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)/"shared"
    shared.mkdir(exist_ok=True)
    folder, done = shared/name, shared/f"{name}.json"
    with FileLock(str(shared/f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)       # a build that failed in another worker
            folder.mkdir()
            info = build(folder)
            done.write_text(json.dumps(info))
    return folder, json.loads(done.read_text())


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """A project copy on which `mlops-nb run` has completed once; yields (root, first run's result, seconds).
    The run happens once per session (`shared_build`); each worker gets a copy, in which a second `mlops-nb run` lets
    DVC see that nothing changed (it re-hashes the copied files) and leaves the no-op record of the copy's files. The
    first run's output is given with the built folder's path written as the copy's."""
    def build(root: Path) -> dict:
        copy_project(root)
        t0 = time.perf_counter()
        r = run([tool("mlops-nb"), "run"], root)
        return {"args": r.args, "stdout": r.stdout, "stderr": r.stderr, "seconds": time.perf_counter() - t0}
    built, info = shared_build(tmp_path_factory, "project", build)
    root = copy_finished(built, tmp_path_factory.mktemp("project")/"p")
    run([tool("mlops-nb"), "run"], root)
    result = subprocess.CompletedProcess(info["args"], 0, info["stdout"].replace(str(built), str(root)),
                                         info["stderr"].replace(str(built), str(root)))
    print(f"\nfirst `mlops-nb run`: {info['seconds']:.1f} s")
    return root, result, info["seconds"]


def output_files(root: Path) -> set[str]:
    "The files under data/, models/ and reports/ (SQLite's -wal/-shm side files, there while a reader is open, aside)."
    return {str(f.relative_to(root)) for t in ("data", "models", "reports") if (root/t).exists()
            for f in (root/t).rglob("*") if f.is_file() and not f.name.endswith(("-wal", "-shm", "-journal"))}


@pytest.fixture(scope="session")
def project(pipeline_run) -> Path:
    return pipeline_run[0]


@pytest.fixture(autouse=True)
def project_keeps_its_outputs(request):
    "A test that uses the shared project may read it, not add or remove outputs: later tests compare them file by file."
    if "project" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("project")
    before = output_files(root)
    yield
    after = output_files(root)
    if after != before:
        pytest.fail(f"{request.node.nodeid} changed the shared project's outputs: added {sorted(after - before)[:10]}, "
                    f"removed {sorted(before - after)[:10]}; write into tmp_path instead")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Other datasets, with only params.yaml changed; each pipeline runs once per test session and is shared.
DATASETS = {
    # name: (source, target, primary metric, acceptance floor)
    "regression": ("bundled:diabetes", "target", "r2", 0.3),
    "binary": ("bundled:breast_cancer", "target", "balanced_accuracy", 0.9),
    "multiclass": ("bundled:wine", "target", "balanced_accuracy", 0.85),
    "missing": ("data/user/clinic.csv", "outcome", "balanced_accuracy", 0.65),        # generated: see GENERATED
    "categorical": ("data/user/orders.csv", "segment", "balanced_accuracy", 0.7),     # generated: see GENERATED
}

# Small and fast for the datasets added by the data phases (issue 3) and the row tests; the first two keep the settings
# they had. The budget is a ceiling, not a cost (these small sets train in ~5-12 s on a quiet machine). With 20, 40, 60
# and 120 s, on a 2-core machine running two test workers (and on CI's slower machine), the planner skipped
# HistGradientBoosting (the last, dearest family, whose share is what the others left), because probe fits and searches
# slowed by the load made it look too dear: the budget doing its job, but not what these tests are about. The budget's
# skipping and subsampling are tested on their own (plan_family's examples in notebooks/05_train.ipynb).
BUDGET_S = 900
FAST = {"train": {"time_budget_s": BUDGET_S, "search_iter": 2, "cv_folds": 3}, "evaluate": {"bootstrap_rounds": 50, "permutation_repeats": 1}}
DATASET_PARAMS = {
    "multiclass": FAST,
    "missing": {**FAST, "validate": {"max_missing_share": 0.5}},   # many missing values, by design
    "categorical": FAST,
}


def clinic_csv(path: Path, n: int = 1200, seed: int = 0):
    """Many missing values (up to 40% per column, written as NA, ? and empty cells), as R's write.csv writes a table
    (an unnamed row-number column); also an identifier, a date and a free-text column. Binary target."""
    import numpy as np, pandas as pd
    rng = np.random.default_rng(seed)
    age, bmi, bp = rng.normal(50, 12, n).round(1), rng.normal(27, 4, n).round(1), rng.normal(120, 15, n).round()
    smoker = rng.random(n) < 0.35
    region = rng.choice(["north", "south", "east", "west"], n)
    days = rng.integers(0, 900, n)
    logit = 2.5 * smoker + 0.09 * (age - 50) + 0.25 * (bmi - 27) + 1.2 * (region == "south") - 0.8
    sick = rng.random(n) < 1 / (1 + np.exp(-2 * logit))
    words = np.array(["cough", "fatigue", "headache", "fever", "back pain", "dizziness"])
    note = [f"patient reports {('cough' if s and rng.random() < 0.7 else rng.choice(words))} and {rng.choice(words)} for {d % 30 + 1} days"
            for s, d in zip(smoker, days)]
    df = pd.DataFrame({"patient_id": [f"P{k:05d}" for k in rng.permutation(n)], "age": age, "bmi": bmi, "bp": bp,
                       "smoker": np.where(smoker, "yes", "no"), "region": region,
                       "visit_date": (pd.Timestamp("2022-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d"),
                       "note": note, "outcome": np.where(sick, "sick", "healthy")}).astype(object)
    for col, share, marker in [("age", 0.3, "NA"), ("bmi", 0.4, "?"), ("bp", 0.25, ""), ("smoker", 0.15, "NA"),
                               ("region", 0.2, "?"), ("note", 0.3, ""), ("visit_date", 0.1, "NA")]:
        df.loc[rng.random(n) < share, col] = marker
    df.index = range(1, n + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=True, index_label="")          # R's write.csv: "","patient_id",... and row numbers 1..n


def orders_csv(path: Path, n: int = 1500, seed: int = 1):
    "Only categorical columns (text codes), three classes decided by a rule with 10% noise."
    import numpy as np, pandas as pd
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue", "black", "white"], n),
                       "size": rng.choice(["S", "M", "L", "XL"], n), "channel": rng.choice(["web", "store", "phone"], n),
                       "country": rng.choice(["DE", "FR", "IT", "ES", "NL", "PL", "SE", "AT"], n),
                       "plan": rng.choice(["basic", "plus", "pro"], n), "promo": rng.choice(["yes", "no"], n)})
    seg = np.where((df.plan == "pro") & (df.channel == "web"), "A", np.where(df["size"].isin(["L", "XL"]), "B", "C"))
    noise = rng.random(n) < 0.1
    df["segment"] = np.where(noise, rng.choice(["A", "B", "C"], n), seg)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


GENERATED = {"missing": clinic_csv, "categorical": orders_csv}   # name -> writes DATASETS[name]'s source into the project


@pytest.fixture(scope="session")
def dataset_project(tmp_path_factory):
    "`dataset_project(name)`: a project copy on which `mlops-nb run` completed for DATASETS[name] (built once per session)."
    import yaml
    built = {}

    def build(name: str, root: Path) -> dict:
        source, target, metric, floor = DATASETS[name]
        copy_project(root)
        if name in GENERATED: GENERATED[name](root/source)
        p = yaml.safe_load((root/"params.yaml").read_text())
        p["ingest"]["source"] = source
        p["project"].update(target=target, primary_metric=metric)
        p["acceptance"]["min_primary_metric"] = floor
        p["package"]["model_name"] = name
        p["train"].update(time_budget_s=BUDGET_S, search_iter=3)             # keep the tests short
        p["evaluate"].update(bootstrap_rounds=100, permutation_repeats=2)
        for section, values in DATASET_PARAMS.get(name, {}).items(): p[section].update(values)
        (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", f"{name} dataset"], root)
        run([tool("mlops-nb"), "run"], root, timeout=1200)
        return {}

    def get(name: str) -> Path:
        if name not in built:
            folder, _ = shared_build(tmp_path_factory, f"dataset-{name}", lambda root: build(name, root))
            built[name] = copy_finished(folder, tmp_path_factory.mktemp(name)/"p")
        return built[name]
    return get


def copy_finished(src: Path, dest: Path) -> Path:
    "A copy of a project on which the pipeline has run (git repository, DVC cache and outputs included)."
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("*.lock.pid"))
    return dest


def kernels_in(root: Path) -> list:
    "Jupyter kernel processes whose working directory is `root` (a step's kernel runs there)."
    import psutil
    out = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if any("ipykernel" in a for a in (p.info["cmdline"] or [])) and p.info["cwd"] == str(root):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.arrivals.append((time.time(), body)); self.server.got.append(body)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass


@pytest.fixture
def hook():
    """A webhook receiver on 127.0.0.1 (a real HTTP server in a thread): `.got` holds every payload POSTed to it,
    `.arrivals` the same as (arrival time, payload); `.server_port` its port."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook); srv.got, srv.arrivals = [], []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
