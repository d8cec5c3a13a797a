"""Every bad input the phases are meant to reject, in one table: params.yaml values, request payloads to POST /predict
and POST /feedback,
command-line arguments and model files. Each case runs the real thing (the `mlops-nb` command in a subprocess, or one
real uvicorn server on 127.0.0.1) and asserts that

- it is refused: the exit code or HTTP status the command documents;
- the error message names the problem (the key, column, file or argument, and what was expected), without a traceback;
- nothing was written: every file under the project's data/, models/ and reports/ has the same SHA-256 and mtime
  before and after. The one exception is by design: a step that fails inside its notebook keeps its executed notebook,
  rendered page and status record (reports/steps/<notebook>.ipynb|.html, reports/steps/<step>.json) so that the error
  can be read.

The shared session `project` is only copied, never changed. Data-file cases (bad CSVs, failed quality gates) live with
the data phases (tests/bad_data_cases.py) and use the same table format: `Case(id, kind, ...)`.
"""
import hashlib, json, os, shutil, subprocess, time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from conftest import free_port, run, tool


@dataclass
class Case:
    id: str
    kind: str                       # params | payload | cli | model
    expect: tuple                   # fragments the error message must hold
    step: str | None = None         # params: the step to run
    change: dict = field(default_factory=dict)   # params: {"section.key": value}; None as value deletes the key
    raw: str | None = None          # params: the whole params.yaml text; payload: the raw request body
    body: object = None             # payload: JSON body
    headers: dict = field(default_factory=dict)
    status: int = 422               # payload: expected HTTP status
    args: list = field(default_factory=list)     # cli/model: arguments of `mlops-nb`; {tmp}, {batch}, {root} are filled in
    code: int = 1                   # cli/model: expected exit code
    mutate: str | None = None       # model: how the package is broken
    typed: bool = False             # relies on the lead's typed validation of params.yaml (issue 8)
    path: str = "/predict"          # payload: the route posted to

    def __str__(self): return self.id


def P(id, step, change, *expect, raw=None, typed=False):
    return Case(id, "params", expect, step=step, change=change, raw=raw, typed=typed)

def Q(id, body, *expect, raw=None, headers=None, status=422, path="/predict"):
    return Case(id, "payload", expect, body=body, raw=raw, headers=headers or {}, status=status, path=path)

def F(id, body, *expect, raw=None, status=422):
    "A POST /feedback payload; the server's log holds the predictions SEEDED (seed-0-0 already labelled)."
    return Q(id, body, *expect, raw=raw, status=status, path="/feedback")

def C(id, args, *expect, code=1):
    return Case(id, "cli", expect, args=args, code=code)

def M(id, mutate, args, *expect, code=1):
    return Case(id, "model", expect, mutate=mutate, args=args, code=code)


ROW = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
       "body_mass_g": 5000.0, "sex": "female", "year": 2008}

CASES = [
    # --- params.yaml: every key is checked by the step that uses it, before anything is written -----------------------
    # (a value checked inside a notebook costs a kernel and the notebook's own test cells, 6-20 s: one case per check
    # kind here; the phase notebooks test the other values of each check themselves)
    P("unknown key", "train", {"train.cv_fold": 5}, "train.cv_fold is not a parameter of 05_train.ipynb"),
    P("unknown key in package", "package", {"package.model_nam": "x"}, "package.model_nam is not a parameter of 08_package.ipynb"),
    P("not YAML", "train", {}, "params.yaml: not valid YAML", raw="project: {seed: 42\ntrain: [oops"),
    P("section not a mapping", "train", {"train": 5}, "section 'train' must be a mapping, got int"),
    P("no project section", "split", {"project": None}, "section 'project' is missing"),
    P("unknown model family", "train", {"train.candidates": ["dummy", "xgboost"]}, "train.candidates: unknown model families ['xgboost']"),
    P("cv_folds < 2", "train", {"train.cv_folds": 1}, "train.cv_folds: expected at least 2, got 1"),
    P("unknown search kind", "train", {"train.search": "grid"}, "train.search: expected 'random', 'halving' or 'none', got 'grid'"),
    P("bad metric name", "train", {"project.primary_metric": "accuracyy"}, "project.primary_metric: 'accuracyy' is not a classification metric"),
    P("negative time budget", "train", {"train.time_budget_s": -5}, "train.time_budget_s: expected a positive number of seconds, got -5"),
    P("split share above 1", "split", {"split.test_size": 1.5}, "split.test_size: expected a share between 0 and 1, got 1.5"),
    P("split shares sum >= 1", "split", {"split.test_size": 0.5, "split.valid_size": 0.3, "split.batch_size": 0.2},
      "test_size + valid_size + batch_size = 1.00 leaves too little to train on"),
    P("missing source file", "ingest", {"ingest.source": "data/nope.csv"}, "ingest.source: file data/nope.csv not found"),
    P("source of the wrong kind", "ingest", {"ingest.source": "params.yaml"}, "ingest.source: params.yaml: expected a .csv or .parquet file, got '.yaml'"),
    P("unknown target column", "validate", {"project.target": "beak"}, "project.target: column 'beak' not in the data"),
    P("too small for cross-validation", "validate",          # said at validate, where it can be acted on, not deep in train
      {"train.cv_folds": 40, "validate.gate_levels": {"missing": "drop", "rows_per_class": "error", "duplicates": "warning",
                                                      "min_rows": "error", "dropped_columns": "warning", "cv_folds": "error"}},
      "training rows per class for cross-validation", "class 'Chinstrap' has 68 rows, about 30 of them in the training split",
      "fewer than train.cv_folds = 40", "set train.cv_folds to 30 or less"),
    P("drop an unknown column", "wrangle", {"wrangle.drop_columns": ["beak"]}, "wrangle.drop_columns: ['beak'] not in the data"),
    # wrong types: refused before the notebook runs by the typed definition (the notebooks' parameters cells)
    P("wrong type: folds as text", "train", {"train.cv_folds": "five"}, "train.cv_folds", "int", typed=True),
    P("wrong type: share as text", "split", {"split.test_size": "a fifth"}, "split.test_size", "float", typed=True),
    P("wrong type: list expected", "wrangle", {"wrangle.drop_columns": "island"}, "wrangle.drop_columns", "list", typed=True),
    P("wrong type: bool expected", "validate", {"validate.profile_minimal": "sometimes"}, "validate.profile_minimal", "bool", typed=True),

    # --- POST /predict: rejected with 422 naming the field; nothing predicted, nothing logged --------------------------
    # (a column left out, or null, is a missing value the model imputes, so it is not an error: see the warnings)
    Q("unknown column", {**ROW, "wings": 2}, "wings", "Extra inputs are not permitted"),
    Q("text for a number", {**ROW, "bill_length_mm": "long"}, "bill_length_mm", "valid number"),
    Q("boolean for a number", {**ROW, "body_mass_g": True}, "body_mass_g", "expected a number, got a boolean"),
    Q("number for a category", {**ROW, "island": 3}, "island", "valid string"),
    Q("object for a category", {**ROW, "sex": {"f": 1}}, "sex", "valid string"),
    Q("NaN", None, "bill_depth_mm", "finite number", raw=json.dumps(ROW).replace("14.5", "NaN")),
    Q("Infinity", None, "flipper_length_mm", "finite number", raw=json.dumps(ROW).replace("215.0", "-Infinity")),
    Q("not JSON", None, "JSON decode error", raw="island=Biscoe"),
    Q("no body", None, "body", "Field required"),
    Q("empty list of rows", [], "at least 1 item"),
    Q("too many rows", [ROW] * 10_001, "at most 10000 items"),
    Q("rows that are not objects", [1, 2], "valid dictionary"),
    Q("a bare string", "Biscoe", "valid dictionary"),
    Q("bad request id", ROW, "x-request-id", "should match pattern", headers={"x-request-id": "no spaces allowed"}),

    # --- labels sent back to POST /feedback: one error per bad row, and nothing stored ---------------------------------
    F("feedback: unknown id", [{"prediction_id": "nope-0", "label": "Adelie"}], "row 0: prediction_id 'nope-0': no logged prediction"),
    F("feedback: not a class", [{"prediction_id": "seed-1-0", "label": "Dragon"}], "row 0", "unknown class 'Dragon'", "Adelie"),
    F("feedback: a number for a class", [{"prediction_id": "seed-1-0", "label": 3.5}], "row 0", "expected a class", "got 3.5"),
    F("feedback: null label", [{"prediction_id": "seed-1-0", "label": None}], "row 0", "missing label"),
    F("feedback: twice in a batch", [{"prediction_id": "seed-1-0", "label": "Adelie"}, {"prediction_id": "seed-1-0", "label": "Gentoo"}],
      "row 1: prediction_id 'seed-1-0': appears twice in this batch (first in row 0)"),
    F("feedback: already labelled", [{"prediction_id": "seed-0-0", "label": "Gentoo"}], "row 0", "already has a label"),
    F("feedback: one bad row among good ones", [{"prediction_id": "seed-1-0", "label": "Adelie"}, {"prediction_id": "seed-2-0", "label": "Adelie"},
                                                {"prediction_id": "nope-3", "label": "Adelie"}], "row 2: prediction_id 'nope-3'", '"stored":0'),
    F("feedback: no label", [{"prediction_id": "seed-1-0"}], "label", "Field required"),
    F("feedback: id not text", [{"prediction_id": 7, "label": "Adelie"}], "prediction_id", "valid string"),
    F("feedback: extra field", [{"prediction_id": "seed-1-0", "label": "Adelie", "weight": 2}], "weight", "Extra inputs are not permitted"),
    F("feedback: not a list", {"prediction_id": "seed-1-0", "label": "Adelie"}, "valid list"),
    F("feedback: empty list", [], "at least 1 item"),
    F("feedback: not JSON", None, "JSON decode error", raw="prediction_id=seed-1-0"),

    # --- command-line arguments -------------------------------------------------------------------------------------
    C("unknown command", ["frobnicate"], "invalid choice: 'frobnicate'", code=2),
    C("unknown step", ["step", "trian"], "invalid choice: 'trian'", code=2),
    C("predict: no --db", ["predict", "--input", "{batch}"], "the following arguments are required: --db", code=2),
    C("predict: missing input", ["predict", "--input", "{tmp}/nothere.csv", "--db", "{tmp}/s.db"], "--input: {tmp}/nothere.csv not found"),
    C("predict: input of the wrong kind", ["predict", "--input", "{tmp}/rows.txt", "--db", "{tmp}/s.db"], "rows.txt: expected a .csv or .parquet file"),
    C("predict: input lacks a column", ["predict", "--input", "{tmp}/no_island.csv", "--db", "{tmp}/s.db"], "column 'island': missing"),
    C("predict: text in a number column", ["predict", "--input", "{tmp}/text_mass.csv", "--db", "{tmp}/s.db"], "column 'body_mass_g': expected numbers, got 'heavy'"),
    C("predict: repeated key", ["predict", "--input", "{tmp}/rep_key.csv", "--db", "{tmp}/s.db", "--key", "id"], "column 'id': repeated values"),
    C("predict: chunk size 0", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db", "--chunk-size", "0"], "--chunk-size: expected a positive number of rows, got 0"),
    C("predict: db folder is a file", ["predict", "--input", "{batch}", "--db", "{tmp}/rows.txt/s.db"], "cannot create its folder", "rows.txt"),
    C("predict: db is a folder", ["predict", "--input", "{batch}", "--db", "{tmp}"], "unable to open database file"),
    C("no project there", ["report", "--project", "{tmp}/nowhere"], "No params.yaml in {tmp}/nowhere"),
    C("monitor: missing batch", ["monitor", "--current", "{tmp}/nothere.csv", "--out-dir", "{tmp}/mon"], "current data: {tmp}/nothere.csv not found", code=2),
    C("monitor: bad window", ["monitor", "--log", "--last", "sometimes", "--db", "{tmp}/nolog.db", "--out-dir", "{tmp}/mon"],
      "monitor.window: expected a length like '30m', '24h' or '7d'", code=2),
    C("monitor: two sources", ["monitor", "--log", "--current", "{batch}"], "not allowed with argument", code=2),
    C("serve: port not a number", ["serve", "--port", "eighty"], "invalid int value: 'eighty'", code=2),
    C("feedback: no label column given", ["feedback", "--input", "{tmp}/labels.csv"], "the following arguments are required: --label-column", code=2),
    C("feedback: no log", ["feedback", "--input", "{tmp}/labels.csv", "--label-column", "species", "--db", "{tmp}/nolog.db"],
      "--db: {tmp}/nolog.db not found"),
    C("feedback: missing input", ["feedback", "--input", "{tmp}/nothere.csv", "--label-column", "species", "--db", "{tmp}/log.db"],
      "--input: {tmp}/nothere.csv not found"),
    C("feedback: no such label column", ["feedback", "--input", "{tmp}/labels.csv", "--label-column", "sp", "--db", "{tmp}/log.db"],
      "--label-column: {tmp}/labels.csv has no column 'sp'", "'prediction_id', 'species'"),
    C("feedback: bad rows", ["feedback", "--input", "{tmp}/bad_labels.csv", "--label-column", "species", "--db", "{tmp}/log.db"],
      "bad_labels.csv line 2 (data row 0): prediction_id 'nope-0': no logged prediction",
      "line 3 (data row 1): prediction_id 'seed-1-0': unknown class 'Dragon'", "line 4 (data row 2)", "already has a label",
      "3 of 4 rows refused; nothing was stored"),
    # the registry and shared storage (issue 15): refused, named, nothing changed
    C("models promote: unknown version", ["models", "promote", "nosuch-000000000000"], "no packaged version 'nosuch-000000000000'",
      "the versions are ['penguins-species-"),
    C("models promote: no version", ["models", "promote"], "models promote: name the VERSION to promote"),
    C("models rollback: no earlier champion", ["models", "rollback"], "no earlier champion to roll back to"),
    C("pull: remote folder missing", ["pull"], "DVC remote 'storage' (", "mlops-nb-storage): the folder does not exist",
      "nothing was changed"),
    C("push: unknown remote", ["push", "--remote", "backup"], "no DVC remote 'backup' (the remotes are ['storage'])"),
    C("pull: unknown remote", ["pull", "--remote", "backup"], "no DVC remote 'backup'", "dvc remote add backup URL"),

    # --- model files: the champion is refused, never half-used --------------------------------------------------------
    M("predict: tampered model", "tampered", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db"], "does not match the recorded", "refusing to load"),
    M("predict: untrusted type", "untrusted", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db"], "untrusted types ['posix.system']"),
    M("predict: no current.json", "no pointer", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db"], "current.json not found: no model is packaged yet"),
    M("predict: broken current.json", "broken pointer", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db"], "current.json: not a champion pointer"),
    M("predict: pointer to a missing version", "dangling pointer", ["predict", "--input", "{batch}", "--db", "{tmp}/s.db"],
      "names the version 'gone-000000000000'", "holds no packaged model"),
    M("models promote: tampered version", "tampered", ["models", "promote", "{champion}"], "does not match the recorded",
      "refusing to use {champion}"),
    M("serve: tampered model", "tampered", ["serve", "--port", "{port}", "--log-db", "{tmp}/log.db"], "does not match the recorded"),
    M("serve: no current.json", "no pointer", ["serve", "--port", "{port}", "--log-db", "{tmp}/log.db"], "no model is packaged yet"),
    M("monitor: untrusted type", "untrusted", ["monitor", "--current", "{batch}", "--out-dir", "{tmp}/mon"],
      "could not evaluate: UntrustedModelError", "posix.system", code=2),
]

KINDS = ("params", "payload", "cli", "model")
assert len(CASES) >= 30 and {c.kind for c in CASES} <= set(KINDS)
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def cases(kind):
    return [pytest.param(c, id=c.id) for c in CASES if c.kind == kind]


# ---------------------------------------------------------------------------------------------------------------------
# helpers

WATCHED = ("data", "models", "reports")


def snapshot(root: Path) -> dict:
    "SHA-256 and mtime of every file under the project's data/, models/ and reports/."
    out = {}
    for d in WATCHED:
        for f in sorted((root/d).rglob("*")):
            if f.is_file():
                out[str(f.relative_to(root))] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    return out


def assert_nothing_written(before: dict, after: dict, allowed=()):
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) and k not in allowed)
    assert not changed, f"files written by a refused input: {changed}"


def assert_names_problem(text: str, case: Case, **fill):
    for e in case.expect:
        e = e.format(**fill)
        assert e in text, f"{case.id}: expected {e!r} in:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def copy(project, tmp_path_factory) -> Path:
    "A copy of the run project (its data, models and reports included) that params and CLI cases may use."
    dest = tmp_path_factory.mktemp("bad_input")/"p"
    shutil.copytree(project, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def inputs(copy, tmp_path_factory) -> Path:
    "Input files for CLI cases, outside the project."
    d = tmp_path_factory.mktemp("inputs")
    batch = pd.read_parquet(copy/"data/processed/batch.parquet").drop(columns="species")
    batch.to_csv(d/"batch.csv", index=False)
    (d/"rows.txt").write_text(batch.to_csv(index=False))
    batch.drop(columns="island").to_csv(d/"no_island.csv", index=False)
    batch.assign(body_mass_g=batch.body_mass_g.astype(object)).assign(body_mass_g=lambda x: x.body_mass_g.where(x.index != 3, "heavy")).to_csv(d/"text_mass.csv", index=False)
    batch.assign(id=[1, 1] + list(range(2, len(batch)))).to_csv(d/"rep_key.csv", index=False)
    seed_log(d/"log.db")
    pd.DataFrame({"prediction_id": ["seed-1-0", "seed-2-0"], "species": ["Adelie", "Gentoo"]}).to_csv(d/"labels.csv", index=False)
    pd.DataFrame({"prediction_id": ["nope-0", "seed-1-0", "seed-0-0", "seed-2-0"],
                  "species": ["Adelie", "Dragon", "Gentoo", "Adelie"]}).to_csv(d/"bad_labels.csv", index=False)
    return d


SEEDED = [{**ROW, "bill_length_mm": 40.0 + i} for i in range(4)]


def seed_log(db: Path) -> None:
    "A prediction log with the rows SEEDED (prediction ids seed-0-0 ... seed-3-0), the first one labelled."
    from mlops_nb.logstore import store_feedback
    from mlops_nb.monitor import write_log_rows
    write_log_rows(str(db), pd.DataFrame(SEEDED), ["Adelie"] * len(SEEDED), request_prefix="seed-")
    assert store_feedback(db, [{"prediction_id": "seed-0-0", "label": "Adelie"}])["stored"] == 1


def params_text(root: Path, case: Case) -> str:
    if case.raw is not None: return case.raw
    p = yaml.safe_load((root/"params.yaml").read_text())
    for k, v in case.change.items():
        if "." not in k:
            if v is None: p.pop(k)
            else: p[k] = v
            continue
        sec, key = k.split(".", 1)
        p[sec][key] = v
    return yaml.safe_dump(p, sort_keys=False)


# ---------------------------------------------------------------------------------------------------------------------
# the four kinds


@pytest.mark.parametrize("case", cases("params"))
def test_params(case, copy):
    from mlops_nb.pipeline import STEPS
    good = (copy/"params.yaml").read_text()
    record = copy/"data/interim/validation.json"
    kept = record.read_bytes() if record.is_file() else None
    before = snapshot(copy)
    try:
        (copy/"params.yaml").write_text(params_text(copy, case))
        r = run([tool("mlops-nb"), "step", case.step], copy, check=False, timeout=300)
    finally:
        (copy/"params.yaml").write_text(good)
    assert r.returncode == 1, f"{case.id}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert_names_problem(r.stderr, case)
    nb = STEPS[case.step]     # a step that failed inside its notebook keeps the executed notebook and its status: by design;
    # a failed validate gate is recorded in validation.json too (as in test_bad_data), the run's record of why it stopped
    recorded = {"data/interim/validation.json"} if case.step == "validate" else set()
    try: assert_nothing_written(before, snapshot(copy), allowed={f"reports/steps/{nb}.ipynb", f"reports/steps/{nb}.html",
                                                                 f"reports/steps/{case.step}.json", *recorded})
    finally:                  # the next cases of the module start from the finished run's record
        if kept is not None and record.read_bytes() != kept: record.write_bytes(kept)


@pytest.fixture(scope="module")
def server(project, tmp_path_factory):
    "One real server on the shared project (it only reads it), logging to a database of its own."
    log_db = tmp_path_factory.mktemp("bad_payload")/"log.db"
    seed_log(log_db)
    before = snapshot(project)
    port = free_port()
    proc = subprocess.Popen([tool("mlops-nb"), "serve", "--port", str(port), "--log-db", str(log_db)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(f"{url}/health", timeout=1).status_code == 200: break
        except requests.ConnectionError:
            if proc.poll() is not None: raise AssertionError(proc.stdout.read())
            time.sleep(0.3)
    yield url, project, before
    proc.terminate(); proc.communicate(timeout=60)
    import sqlite3
    with sqlite3.connect(log_db) as con:    # a refused request is neither predicted nor logged, a refused label not stored
        assert con.execute("select count(*) from prediction_log").fetchone() == (len(SEEDED),)
        assert con.execute("select prediction_id, label from feedback").fetchall() == [("seed-0-0", '"Adelie"')]


@pytest.mark.parametrize("case", cases("payload"))
def test_payload(case, server):
    url, project, before = server
    if case.raw is not None:
        r = requests.post(f"{url}{case.path}", data=case.raw.encode(), headers={"content-type": "application/json", **case.headers}, timeout=30)
    elif case.body is None:
        r = requests.post(f"{url}{case.path}", headers=case.headers, timeout=30)
    else:
        r = requests.post(f"{url}{case.path}", json=case.body, headers=case.headers, timeout=30)
    assert r.status_code == case.status, f"{case.id}: HTTP {r.status_code}: {r.text[:2000]}"
    assert r.headers["content-type"].startswith("application/json")
    assert_names_problem(r.text if len(r.text) < 100_000 else r.text[:2000] + r.text[-2000:], case)
    assert_nothing_written(before, snapshot(project))


def fill(args, **kw):
    return [a.format(**kw) for a in args]


@pytest.mark.parametrize("case", cases("cli"))
def test_cli(case, copy, inputs, tmp_path):
    for f in inputs.iterdir(): shutil.copy2(f, tmp_path/f.name)
    before = snapshot(copy)
    kw = dict(tmp=tmp_path, batch=tmp_path/"batch.csv", root=copy, port=free_port())
    r = run([tool("mlops-nb"), *fill(case.args, **kw)], copy, check=False, timeout=300)
    assert r.returncode == case.code, f"{case.id}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert_names_problem(r.stderr, case, **kw)
    assert_nothing_written(before, snapshot(copy))
    assert not (tmp_path/"s.db").exists()
    if case.args[0] == "feedback":      # the refused labels left the log's feedback as it was
        import sqlite3
        with sqlite3.connect(tmp_path/"log.db") as con:
            assert con.execute("select prediction_id from feedback").fetchall() == [("seed-0-0",)]


def break_package(pkg: Path, how: str):
    from mlops_nb.core import file_sha256, read_json, write_json
    cur = pkg/read_json(pkg/"current.json")["version"]
    if how == "tampered":
        b = bytearray((cur/"model.skops").read_bytes()); b[len(b) // 2] ^= 0xFF; (cur/"model.skops").write_bytes(bytes(b))
    elif how == "untrusted":
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        sio.dump(make_pipeline(FunctionTransformer(os.system), LogisticRegression()), cur/"model.skops")
        lin = read_json(cur/"lineage.json"); lin["model_sha256"] = file_sha256(cur/"model.skops"); write_json(lin, cur/"lineage.json")
    elif how == "no pointer": (pkg/"current.json").unlink()
    elif how == "broken pointer": (pkg/"current.json").write_text('{"version": ')
    elif how == "dangling pointer": write_json({"version": "gone-000000000000"}, pkg/"current.json")
    else: raise ValueError(how)


@pytest.mark.parametrize("case", cases("model"))
def test_model(case, project, inputs, tmp_path):
    "On a small project of its own (params.yaml, data/processed, models/package) whose package is broken as the case says."
    root = tmp_path/"p"; root.mkdir()
    shutil.copy2(project/"params.yaml", root/"params.yaml")
    shutil.copytree(project/"models/package", root/"models/package")
    shutil.copytree(project/"data/processed", root/"data/processed")
    (root/"reports").mkdir()
    shutil.copy2(inputs/"batch.csv", tmp_path/"batch.csv")
    champion = json.loads((root/"models/package/current.json").read_text())["version"]
    break_package(root/"models/package", case.mutate)
    before = snapshot(root)
    kw = dict(tmp=tmp_path, batch=tmp_path/"batch.csv", root=root, port=free_port(), champion=champion)
    r = run([tool("mlops-nb"), *fill(case.args, **kw)], root, check=False, timeout=300)
    assert r.returncode == case.code, f"{case.id}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert_names_problem(r.stderr, case, **kw)
    assert_nothing_written(before, snapshot(root))
    assert not (tmp_path/"s.db").exists() and not (tmp_path/"log.db").exists()
