"""Pipeline-level faults, each on a real copy of a finished project: a step that raises, a kernel killed by a
signal, a step past its timeout, Ctrl-C during a run, and two runs started at once. In every case the
run stops with a message naming the step and what happened, nothing half-written is left where a later
step or the server reads, the champion model stays loadable, and the next run resumes where it stopped."""
import json, os, re, signal, subprocess, time
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import BIN, copy_finished, kernels_in, run, tool

STEPS = ["ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"]


@pytest.fixture
def finished(project, tmp_path):
    "A private copy of the finished shared project: these tests break things."
    return copy_finished(project, tmp_path/"p")


def set_params(root: Path, **sections):
    p = yaml.safe_load((root/"params.yaml").read_text())
    for section, values in sections.items():
        p.setdefault(section, {}).update(values)
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def add_cell(root: Path, notebook: str, code: str):
    "Insert a code cell into a phase notebook right after its parameters cell, before it writes anything."
    path = root/"notebooks"/notebook
    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata["tags"] = ["step"]      # steps skip example cells; a cell tagged `step` is part of the step's work
    nb.cells.insert(i + 1, cell)
    nbformat.write(nb, path)


def ran_and_skipped(out: str):
    ran = [s for s in STEPS if f"Running stage '{s}'" in out]
    skipped = [s for s in STEPS if f"Stage '{s}' didn't change, skipping" in out]
    return ran, skipped


def stray_files(root: Path) -> list[str]:
    "Temporary files an interrupted write would leave behind, where a later step or the server reads."
    pats = [".*.tmp", "*.tmp", ".*.ipynb"]
    out = []
    for d in ("data", "models", "reports"):
        for pat in pats:
            out += [str(p.relative_to(root)) for p in (root/d).rglob(pat) if ".ipynb_checkpoints" not in p.parts]
    return out


def champion_loads(root: Path) -> str:
    "The champion's version, loaded for real through the library (hash-checked, trusted types only)."
    r = run([tool("python"), "-c", "from mlops_nb.serve import load_model; print(load_model('models/package').version)"], root)
    return r.stdout.strip()


def test_a_step_that_raises_stops_the_run_and_the_next_run_resumes_from_it(finished):
    champion = champion_loads(finished)
    split_before = {p.name: p.read_bytes() for p in (finished/"data/processed").glob("*.parquet")}
    set_params(finished, train={"candidates": ["dummy", "no_such_family"]})
    r = run([tool("mlops-nb"), "run"], finished, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "step train failed:" in out and "no_such_family" in out
    assert "run again to resume from it" in out
    status = json.loads((finished/"reports/steps/train.json").read_text())
    assert status["status"] == "failed" and "no_such_family" in status["error"]
    page = (finished/"reports/steps/05_train.html").read_text()
    assert "no_such_family" in page                                              # the error is visible
    assert "05_train.html" in (finished/"reports/index.html").read_text()           # and linked from the report
    assert {p.name: p.read_bytes() for p in (finished/"data/processed").glob("*.parquet")} == split_before
    assert champion_loads(finished) == champion
    assert stray_files(finished) == []

    set_params(finished, train={"candidates": ["dummy", "linear"]})
    r = run([tool("mlops-nb"), "run"], finished)
    ran, skipped = ran_and_skipped(r.stdout)
    assert skipped[:4] == ["ingest", "validate", "wrangle", "split"]                # resumed from the failed step
    assert ran[0] == "train" and "monitor" in ran


def test_a_killed_kernel_is_reported_by_name_and_leaves_nothing_half_written(finished):
    champion = champion_loads(finished)
    add_cell(finished, "04_split.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    r = run([tool("mlops-nb"), "run"], finished, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "step split failed: the kernel died (killed by a signal, or out of memory)" in out
    assert json.loads((finished/"reports/steps/split.json").read_text())["status"] == "failed"
    assert stray_files(finished) == []
    assert kernels_in(finished) == []
    # DVC removed the step's declared outputs before it ran; a later step finds them missing, not half-written
    assert not (finished/"data/processed/train.parquet").exists()
    assert "split" in run([tool("dvc"), "status"], finished).stdout                  # not recorded as done
    assert champion_loads(finished) == champion


def test_a_step_past_its_timeout_is_stopped_and_reported(finished):
    set_params(finished, run={"step_timeout_s": 4})
    add_cell(finished, "03_wrangle.ipynb", "import time\ntime.sleep(120)")
    t0 = time.perf_counter()
    r = run([tool("mlops-nb"), "run"], finished, check=False, timeout=120)
    seconds = time.perf_counter() - t0
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "step wrangle timed out: timed out after 4 s (run.step_timeout_s)" in out
    status = json.loads((finished/"reports/steps/wrangle.json").read_text())
    assert status["status"] == "timed out" and status["seconds"] < 30
    assert seconds < 60, seconds
    assert kernels_in(finished) == [] and stray_files(finished) == []
    assert not (finished/"data/interim/clean.parquet").exists()
    page = (finished/"reports/steps/03_wrangle.html").read_text()
    assert "STOPPED" in page and "timed out after 4 s" in page                      # the page says why it stopped
    assert "This run FAILED at step wrangle" in (finished/"reports/index.html").read_text()


def test_a_wrong_type_in_params_is_refused_before_anything_runs(finished):
    before = (finished/"dvc.lock").read_text()
    set_params(finished, train={"cv_folds": "five"})
    r = run([tool("mlops-nb"), "run"], finished, check=False)
    assert r.returncode == 1
    assert "params.yaml: train.cv_folds = 'five' is not a valid int" in r.stderr
    assert "Traceback" not in r.stderr and "Running stage" not in r.stdout
    assert (finished/"dvc.lock").read_text() == before


def _start(root: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "YDATA_PROFILING_NO_ANALYTICS": "True", "PYTHONUNBUFFERED": "1",
           "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", "")}
    # Ctrl-C works as in a terminal even when this test runs in the background of a non-interactive shell (`cmd &`),
    # which starts it with SIGINT ignored, a disposition every child would inherit (and Python keeps).
    return subprocess.Popen([tool("mlops-nb"), "run", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 300) -> str:
    "Read the run's output until `text` appears."
    seen, t0 = "", time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None: break
        seen += line
        if text in line: return seen
    raise AssertionError(f"{text!r} did not appear; output so far:\n{seen[-3000:]}")


def test_ctrl_c_stops_the_run_cleanly_and_the_next_run_resumes(finished):
    champion = champion_loads(finished)
    lock_before = yaml.safe_load((finished/"dvc.lock").read_text())["stages"]["train"]
    proc = _start(finished, "--force")
    seen = _wait_for(proc, "[5/10] train: running")
    time.sleep(2)                                          # inside the notebook now
    os.killpg(proc.pid, signal.SIGINT)                     # what Ctrl-C in a terminal does: the whole process group
    rest, _ = proc.communicate(timeout=120)
    out = seen + rest
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted" in out
    assert kernels_in(finished) == [] and stray_files(finished) == []
    assert json.loads((finished/"reports/steps/train.json").read_text())["status"] == "interrupted"
    assert yaml.safe_load((finished/"dvc.lock").read_text())["stages"]["train"] == lock_before   # not recorded as done
    assert champion_loads(finished) == champion
    r = run([tool("mlops-nb"), "run"], finished)
    ran, skipped = ran_and_skipped(r.stdout)
    assert skipped[:4] == ["ingest", "validate", "wrangle", "split"], r.stdout[-3000:]
    # train resumes: it runs again, or DVC restores it from its run-cache (the interrupted run had the same inputs as the
    # finished one), which the summary names
    restored = "Stage 'train' is cached - skipping run" in r.stdout
    assert (ran[:1] == ["train"]) != restored, r.stdout[-3000:]
    assert not restored or re.search(r"^train\s+ok\s+[\d.]+ s\s+restored \(run-cache\)", r.stdout, re.M), r.stdout[-3000:]
    assert (finished/"models/trained.skops").is_file() and json.loads((finished/"reports/steps/train.json").read_text())["status"] == "ok"


def test_two_runs_at_once_one_refuses_clearly_and_wait_queues(finished):
    first = _start(finished, "--force")
    _wait_for(first, "[1/10] ingest: running")
    second = run([tool("mlops-nb"), "run"], finished, check=False)
    assert second.returncode == 1
    assert "another `mlops-nb run` is running in this project (pid" in second.stderr
    assert "Running stage" not in second.stdout
    waiting = _start(finished, "--wait")
    first_out, _ = first.communicate(timeout=600)
    waited_out, _ = waiting.communicate(timeout=300)
    assert first.returncode == 0, first_out[-3000:]
    assert waiting.returncode == 0, waited_out[-3000:]
    assert "0 of 10 steps ran" in waited_out                # it ran after the first, on its finished outputs
    st = run([tool("dvc"), "status"], finished)
    assert "up to date" in st.stdout, st.stdout
