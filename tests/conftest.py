"""Fixtures that build a real project in a temporary folder and run the real pipeline in it.

Nothing is mocked: the project is a copy of this repository's files (tracked, plus new ones not
ignored), made a git repository with one commit (dvclive and the lineage need a commit), and the
pipeline runs there through the `mlops-nb` command, DVC and papermill, exactly as a user runs it.
"""
import os, shutil, socket, subprocess, sys, time
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


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    "A project copy on which `mlops-nb run` has completed once; yields (root, first run's result, seconds)."
    root = copy_project(tmp_path_factory.mktemp("project"))
    t0 = time.perf_counter()
    result = run([tool("mlops-nb"), "run"], root)
    seconds = time.perf_counter() - t0
    print(f"\nfirst `mlops-nb run`: {seconds:.1f} s")
    return root, result, seconds


@pytest.fixture(scope="session")
def project(pipeline_run) -> Path:
    return pipeline_run[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Other bundled datasets, with only params.yaml changed; each pipeline runs once per test session and is shared.
DATASETS = {
    # name: (source, target, primary metric, acceptance floor)
    "regression": ("bundled:diabetes", "target", "r2", 0.3),
    "binary": ("bundled:breast_cancer", "target", "balanced_accuracy", 0.9),
}


@pytest.fixture(scope="session")
def dataset_project(tmp_path_factory):
    "`dataset_project(name)`: a project copy on which `mlops-nb run` completed for DATASETS[name]."
    import yaml
    built = {}

    def get(name: str) -> Path:
        if name not in built:
            source, target, metric, floor = DATASETS[name]
            root = copy_project(tmp_path_factory.mktemp(name))
            p = yaml.safe_load((root/"params.yaml").read_text())
            p["ingest"]["source"] = source
            p["project"].update(target=target, primary_metric=metric)
            p["acceptance"]["min_primary_metric"] = floor
            p["package"]["model_name"] = name
            p["train"].update(time_budget_s=60, search_iter=3)                   # keep the tests short
            p["evaluate"].update(bootstrap_rounds=100, permutation_repeats=2)
            (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
            run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", f"{name} dataset"], root)
            run([tool("mlops-nb"), "run"], root, timeout=1200)
            built[name] = root
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
