# %% [markdown]
# Package
> The accepted model as a versioned package: the skops model file (hash-checked at load), an ONNX copy when it converts with parity, the schema it expects, a model card and the full lineage of the run. The champion pointer moves only once the package is complete.

# %% [code]
#| default_exp package

# %% [code]
#| export
from __future__ import annotations
import glob, os, shutil, tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_nb.core import (atomic_path, environment_info, file_sha256, git_info, load_trusted, machine_info, now_utc,
                           read_json, write_json)
from mlops_nb.contracts import TamperedModelError, current_package, load_package   # shared: 00a_contracts  # noqa: F401

# %% [code]
from fastcore.test import test_eq, test_fail
import os
from sklearn.linear_model import LogisticRegression
from mlops_nb.core import find_root, load_params, record_step, require, save_model

# %% [code] tags=['parameters']
model_name: str = "penguins-species"   # the package's name; a version is <model_name>-<hash of the model file>
target: str = "species"                 # the column the model predicts
model_path: str = "models/trained.skops"   # the trained model to package
schema_path: str = "data/interim/schema.json"   # the data contract, copied into the package
acceptance_path: str = "reports/acceptance.json"   # only an accepted model is packaged
train_live_dir: str = "reports/dvclive/train"   # cross-validation metrics of the chosen candidate
eval_dir: str = "reports/evaluate"      # test metrics with their intervals
split_dir: str = "data/processed"       # the test split checks ONNX parity
package_dir: str = "models/package"     # every version, and current.json naming the champion
lineage_dir: str = "reports/lineage"    # per-step lineage records, merged into the package's lineage.json
steps_dir: str = "reports/steps"        # per-step timings, merged too

# %% [markdown]
## Lineage

Everything needed to say how the model came to be: the commit (and whether the tree was dirty),
the hash of every file each step read and wrote, all parameters, package versions, the machine,
how long each step took, and the metrics.

# %% [code]
#| export
def collect_lineage(lineage_dir, steps_dir=None, params: dict | None = None, root=".") -> dict:
    "Merge the per-step lineage records (and the step runner's timings, when present) into one record."
    records = {Path(f).stem: read_json(f) for f in sorted(glob.glob(str(Path(lineage_dir)/"*.json")))}
    timings = {}
    if steps_dir is not None:
        for f in sorted(glob.glob(str(Path(steps_dir)/"*.json"))):
            t = read_json(f)
            if "step" in t: timings[t["step"]] = {k: t.get(k) for k in ("seconds", "status", "started")}
    ingest = records.get("ingest", {})
    return {"created": now_utc(), "git": git_info(root), "environment": environment_info(), "machine": machine_info(),
            "data": ingest.get("data", {}), "params": params or {},
            "steps": {name: {"params": r.get("params"), "inputs": r.get("inputs"), "outputs": r.get("outputs"),
                             "metrics": r.get("metrics"), "timing": timings.get(name)} for name, r in records.items()}}

# %% [code]
import tempfile as _tf
with _tf.TemporaryDirectory() as d:
    write_json(
        {
            "step": "ingest",
            "params": {"a": 1},
            "inputs": {},
            "outputs": {},
            "metrics": {},
            "data": {"data_sha256": "x"},
        },
        Path(d) / "l/ingest.json",
    )
    write_json({"step": "ingest", "seconds": 1.5, "status": "ok"}, Path(d)/"s/ingest.json")
    lin = collect_lineage(Path(d)/"l", Path(d)/"s", {"p": 1}, root=d)
    test_eq(lin["data"], {"data_sha256": "x"}); test_eq(lin["steps"]["ingest"]["timing"]["seconds"], 1.5)

# %% [markdown]
## Model card

Written with skops' `Card`, so the card lists the estimator's hyperparameters and structure too.

# %% [code]
#| export
def model_card(model, name: str, version: str, schema: dict, metrics: dict, lineage: dict,
               intervals: dict | None = None, onnx: dict | None = None) -> "skops.card.Card":
    "A skops model card describing `model`, its data contract, its metrics with 95% intervals, and its lineage."
    from skops.card import Card
    card = Card(model, trusted=None)
    feats = ", ".join(f"`{f}` ({schema['columns'][f]['kind']})" for f in schema["features"])
    git = lineage.get("git", {})
    card.add(
        **{
            "Model description": (
                f"**{name}**, version `{version}`: predicts `{schema['target']}` ({schema['task']}) from {feats}."
            ),
            "Intended uses & limitations": (
                "Trained on the data and with the parameters recorded in `lineage.json`; use it for rows like those"
                " (see `schema.json`). Inputs are checked against the schema: values outside the training ranges and"
                " unseen categories are reported, and predictions on them are less reliable. The test split is small"
                " for small data sets: read the intervals, not just the point estimates."
            ),
            "Training Procedure": (
                f"Data sha256 `{lineage.get('data', {}).get('data_sha256')}`; code commit `{git.get('commit')}` "
                f"(dirty: {git.get('dirty')}); Python {lineage.get('environment', {}).get('python')}; "
                "chosen by cross-validation among the families in `lineage.json`."
            ),
            "Export": (
                "ONNX: `model.onnx`, parity with scikit-learn on the test split: " + str(onnx.get("parity"))
                if onnx and onnx.get("converted")
                else f"ONNX: not exported ({(onnx or {}).get('reason', 'not attempted')})"
            ),
        }
    )
    ci = intervals or {}
    card.add_metrics(
        **{f"test {k}": f"{v} (95% CI {ci[k][0]} to {ci[k][1]})" if k in ci else v for k, v in metrics.items()}
    )
    return card

# %% [code]
_card = model_card(
    LogisticRegression().fit([[0.0], [1.0]], ["a", "b"]), "demo", "demo-abc",
    {"target": "y", "task": "binary", "features": ["x"], "columns": {"x": {"kind": "numeric"}}}, {"accuracy": 0.9},
    {"git": {"commit": "c0ffee", "dirty": False}, "data": {"data_sha256": "d1"}}, {"accuracy": (0.8, 0.95)},
    {"converted": False, "reason": "no converter"},
)
_md = _card.render()
for _s in ("**demo**, version `demo-abc`: predicts `y` (binary) from `x` (numeric)", "Data sha256 `d1`; code commit `c0ffee`",
           "0.9 (95% CI 0.8 to 0.95)", "ONNX: not exported (no converter)"):
    assert _s in _md, _s

# %% [markdown]
## ONNX

skl2onnx converts the whole pipeline when every step has a converter. Parity with scikit-learn is checked
on the test split before the file is kept: labels must agree on at least 99% of rows and probabilities
(or regression values) within 1e-3, because ONNX computes in float32.

Our categorical branch (`missing_to_nan`, then the most-frequent imputer, then the encoder) converts through
three converters of our own, given to skl2onnx for this conversion only: ONNX has no missing text, so the
model takes a missing category as the text `ONNX_MISSING`; `missing_to_nan` is then the identity, the imputer
replaces `ONNX_MISSING` with the most frequent category, and a one-hot encoder that met no rare category in
training ignores unseen ones, as scikit-learn does. The parity rows include missing values and an unseen
category in every categorical column, so a model that would fail on them in ONNX is not exported.

# %% [code]
#| export
ONNX_MISSING = "__mlops_nb_missing__"   # how an ONNX model of ours takes a missing category (ONNX text has no NaN)

def _swapped(convert, change):
    """A skl2onnx converter or shape calculator that runs `convert` on a copy of the operator's estimator changed by
    `change`."""
    def run(*args):
        operator = args[-1] if len(args) == 1 else args[1]
        op = operator.raw_operator
        new = change(operator, op)
        if new is None: return convert(*args)
        operator.raw_operator = new
        try: return convert(*args)
        finally: operator.raw_operator = op
    return run

def onnx_converters() -> tuple[dict, dict, dict]:
    """The custom converters, shape calculators and parsers (by estimator type) that make our categorical branch
    convertible; for `convert_sklearn(..., custom_conversion_functions=, custom_shape_calculators=, custom_parsers=)`."""
    import copy
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
    from skl2onnx._parse import _parse_sklearn_simple_model
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.function_transformer import convert_sklearn_function_transformer
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
    from skl2onnx.shape_calculators.function_transformer import calculate_sklearn_function_transformer_output_shapes
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from skl2onnx.shape_calculators.one_hot_encoder import calculate_sklearn_one_hot_encoder_output_shapes
    from mlops_nb.features import missing_to_nan
    def identity(operator, op):        # missing_to_nan on text that already says ONNX_MISSING: nothing to do
        return copy.copy(op).set_params(func=None, feature_names_out=None) if op.func is missing_to_nan else None
    def text_imputer(operator, op):    # NaN cannot be text: the model's input says ONNX_MISSING instead
        nan = isinstance(op.missing_values, float) and op.missing_values != op.missing_values
        if not (nan and isinstance(operator.inputs[0].type, StringTensorType)): return None
        new = copy.copy(op); new.missing_values = ONNX_MISSING
        return new
    # with no rare category met in training, "infrequent_if_exist" ignores unseen ones
    def ignore_unseen(operator, op):
        rare = getattr(op, "infrequent_categories_", None) or []
        if op.handle_unknown != "infrequent_if_exist" or any(r is not None for r in rare): return None
        new = copy.copy(op); new.handle_unknown = "ignore"
        return new
    def parse(scope, model, inputs, custom_parsers=None):   # text in, text out (skl2onnx would declare floats)
        if getattr(model, "func", None) is not missing_to_nan:
            return _parse_sklearn_simple_model(scope, model, inputs, custom_parsers=custom_parsers)
        op = scope.declare_local_operator("SklearnFunctionTransformer", model)
        op.inputs = inputs
        op.outputs.append(scope.declare_local_variable("variable", inputs[0].type.__class__()))
        return op.outputs
    conv = {FunctionTransformer: _swapped(convert_sklearn_function_transformer, identity),
            SimpleImputer: _swapped(convert_sklearn_imputer, text_imputer),
            OneHotEncoder: _swapped(convert_sklearn_one_hot_encoder, ignore_unseen)}
    shape = {FunctionTransformer: _swapped(calculate_sklearn_function_transformer_output_shapes, identity),
             SimpleImputer: calculate_sklearn_imputer_output_shapes,
             OneHotEncoder: _swapped(calculate_sklearn_one_hot_encoder_output_shapes, ignore_unseen)}
    return conv, shape, {FunctionTransformer: parse}

def onnx_feeds(X: pd.DataFrame, inputs: list[dict]) -> dict:
    "The ONNX model's inputs for the rows of `X`: numbers as float32 (NaN when missing), categories as text."
    feeds = {}
    for i in inputs:
        s = X[i["feature"]]
        if i["type"] == "float":
            feeds[i["name"]] = pd.to_numeric(s).to_numpy(np.float32, na_value=np.nan).reshape(-1, 1)
        else: feeds[i["name"]] = s.astype(object).where(s.notna(), ONNX_MISSING).astype(str).to_numpy().reshape(-1, 1)
    return feeds

# %% [code]
conv, shape, parsers = onnx_converters()
test_eq(set(conv), set(shape)); assert set(parsers) <= set(conv)
_f = onnx_feeds(pd.DataFrame({"n": [1.5, None], "c": ["a", None]}),
                [{"feature": "n", "name": "n", "type": "float"}, {"feature": "c", "name": "c", "type": "string"}])
assert _f["n"].dtype == np.float32 and np.isnan(_f["n"][1, 0])
test_eq(_f["c"].ravel().tolist(), ["a", ONNX_MISSING])

# %% [code]
#| export
PARITY = {"min_label_agreement": 0.99, "max_abs_diff": 1e-3}

def _parity_rows(X: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """`X` plus, for each categorical column, its first row with an unseen category there (ONNX must take it as
    scikit-learn does)."""
    cats = [f for f in schema["features"] if schema["columns"][f]["kind"] == "categorical"]
    extra = [X.iloc[:1].assign(**{c: "__unseen__"}) for c in cats] if len(X) else []
    return pd.concat([X, *extra], ignore_index=True) if extra else X

def export_onnx(model, schema: dict, X: pd.DataFrame, dest) -> dict:
    """Convert `model` to ONNX at `dest` if it converts and agrees with scikit-learn on `X` (missing values included, and
    an unseen category per categorical column); say why not otherwise. The result lists the model's inputs."""
    import warnings
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
        num = lambda f: schema["columns"][f]["kind"] == "numeric"
        types = [(f, FloatTensorType([None, 1]) if num(f) else StringTensorType([None, 1])) for f in schema["features"]]
        opts = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        conv, shape, parsers = onnx_converters()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_sklearn(model, initial_types=types, options=opts, target_opset=18,
                                  custom_conversion_functions=conv, custom_shape_calculators=shape,
                                  custom_parsers=parsers)
        sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        Xc = _parity_rows(X[schema["features"]].reset_index(drop=True), schema)
        names = [i.name for i in sess.get_inputs()]   # skl2onnx renames inputs that are not identifiers ("mean radius")
        inputs = [
            {"feature": f, "name": n, "type": "float" if num(f) else "string"}
            for n, f in zip(names, schema["features"])
        ]
        out = sess.run(None, onnx_feeds(Xc, inputs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # the unseen categories
            want = model.predict(Xc), (model.predict_proba(Xc) if hasattr(model, "predict_proba") else None)
    except Exception as e:
        return {"converted": False, "reason": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    if want[1] is not None:
        agree = float(np.mean(out[0] == want[0]))
        diff = float(np.max(np.abs(out[1] - want[1]))) if len(Xc) else 0.0
        ok = agree >= PARITY["min_label_agreement"] and diff <= PARITY["max_abs_diff"]
        parity = {"rows": len(Xc), "label_agreement": round(agree, 6), "max_abs_proba_diff": diff}
    else:
        diff = float(np.max(np.abs(out[0].ravel() - want[0]) / (1 + np.abs(want[0])))) if len(Xc) else 0.0
        ok, parity = diff <= PARITY["max_abs_diff"], {"rows": len(Xc), "max_rel_diff": diff}
    if not ok: return {"converted": False, "reason": f"parity check failed: {parity}", "parity": parity}
    with atomic_path(dest) as tmp: Path(tmp).write_bytes(onx.SerializeToString())
    return {"converted": True, "path": Path(dest).name, "parity": parity, "tolerance": PARITY, "inputs": inputs,
            "missing_text": ONNX_MISSING}

# %% [code]
from sklearn.linear_model import LogisticRegression, Ridge
_Xo = pd.DataFrame({"a": np.linspace(0, 1, 50), "b c": np.linspace(1, 0, 50) ** 2})   # a name that is not an identifier
from sklearn.pipeline import Pipeline
from mlops_nb.features import make_preprocessor
_ro = Pipeline([("features", make_preprocessor(["a", "b c"], [])), ("model", Ridge())]).fit(_Xo, _Xo.a * 2 + _Xo["b c"])
_so = {"features": ["a", "b c"], "columns": {"a": {"kind": "numeric"}, "b c": {"kind": "numeric"}}}
with _tf.TemporaryDirectory() as d:
    _r = export_onnx(_ro, _so, _Xo, Path(d)/"m.onnx")
    assert _r["converted"] and _r["parity"]["max_rel_diff"] < 1e-4 and (Path(d)/"m.onnx").exists(), _r
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.pipeline import make_pipeline
    _r = export_onnx(make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(_Xo, _Xo.a), _so, _Xo, Path(d)/"x.onnx")
    assert not _r["converted"] and "FunctionTransformer" in _r["reason"] and not (Path(d)/"x.onnx").exists()

# %% [markdown]
A classifier with a categorical column, missing values in both kinds of column, converts with parity:

# %% [code]
_rng = np.random.default_rng(0)
_Xc = pd.DataFrame({"x": _rng.normal(size=120), "c": _rng.choice(["p", "q", "r"], 120).astype(object)})
_yc = np.where((_Xc.x > 0) | (_Xc.c == "q"), "yes", "no")
_Xc.loc[::7, "x"] = np.nan; _Xc.loc[::5, "c"] = None
_sc = {"features": ["x", "c"], "columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
for _enc in ("onehot", "ordinal"):
    _mc = Pipeline([("features", make_preprocessor(["x"], ["c"], encoding=_enc)), ("model", LogisticRegression())]).fit(
        _Xc, _yc
    )
    with _tf.TemporaryDirectory() as d:
        _r = export_onnx(_mc, _sc, _Xc, Path(d)/"c.onnx")
        assert _r["converted"] and _r["parity"]["label_agreement"] == 1.0 and _r["parity"]["rows"] == 121, _r
        test_eq([i["type"] for i in _r["inputs"]], ["float", "string"])

# %% [markdown]
## The package

Each version lives in its own folder, `package_dir/<version>/`, built in a temporary folder and
renamed into place; `current.json` names the champion and is replaced atomically last. An error at
any point (a full disk, a bad model file) leaves the previous champion loadable.

# %% [code]
#| export
def model_version(name: str, model_file) -> str:
    "A version name from the model's name and the hash of its file."
    return f"{name}-{file_sha256(model_file)[:12]}"

def _fsync(path) -> None:
    "Flush a file or folder to disk, so that a rename after it never exposes an empty file after a crash."
    fd = os.open(path, os.O_RDONLY)
    try: os.fsync(fd)
    finally: os.close(fd)

def _champion_name(package_dir) -> str | None:
    try: return read_json(Path(package_dir)/"current.json").get("version")
    except (OSError, ValueError, AttributeError): return None

# %% [code]
with _tf.TemporaryDirectory() as d:
    (Path(d)/"m.skops").write_bytes(b"model bytes")
    test_eq(model_version("demo", Path(d)/"m.skops"), "demo-" + file_sha256(Path(d)/"m.skops")[:12])
    test_eq(_champion_name(d), None)   # no current.json yet
    write_json({"version": "demo-1"}, Path(d)/"current.json"); test_eq(_champion_name(d), "demo-1")

# %% [code]
#| export
def write_version(model, model_file, dest, name: str, version: str, schema: dict, metrics: dict, lineage: dict,
                  intervals: dict | None = None, X_check: pd.DataFrame | None = None) -> Path:
    """Write the files of `version` into the folder `dest`, each flushed to disk: the model file, its schema, the ONNX
    copy (when `X_check` rows are given to check its parity), the lineage and the model card."""
    dest = Path(dest)
    shutil.copyfile(model_file, dest/"model.skops")
    write_json(schema, dest/"schema.json")
    onnx = export_onnx(model, schema, X_check, dest/"model.onnx") if X_check is not None else None
    write_json(
        {
            **lineage,
            "version": version,
            "metrics": metrics,
            "intervals": intervals or {},
            "onnx": onnx,
            "model_sha256": file_sha256(dest / "model.skops"),
        },
        dest / "lineage.json",
    )
    model_card(model, name, version, schema, metrics.get("test", {}), lineage, intervals, onnx).save(
        dest / "model_card.md"
    )
    for f in dest.iterdir(): _fsync(f)
    return dest

def install_folder(package_dir, version: str, write) -> Path:
    """`package_dir/version`, made by `write(folder)` in a temporary folder that is then renamed into place: it
    appears whole or not at all (the temporary folder is removed on error)."""
    package_dir = Path(package_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=package_dir))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, package_dir/version)
        _fsync(package_dir)
    finally:
        if tmp.exists(): shutil.rmtree(tmp, ignore_errors=True)
    return package_dir/version

# %% [code]
with _tf.TemporaryDirectory() as d:
    _mf = save_model(LogisticRegression().fit([[0.0], [1.0]], ["a", "b"]), Path(d)/"m.skops")
    _sch = {"target": "y", "task": "binary", "features": ["x"], "columns": {"x": {"kind": "numeric"}}}
    _v = install_folder(Path(d), "v1", lambda f: write_version(load_trusted(_mf), _mf, f, "demo", "v1", _sch, {}, {}))
    test_eq(sorted(f.name for f in _v.iterdir()), ["lineage.json", "model.skops", "model_card.md", "schema.json"])
    test_eq(read_json(_v/"lineage.json")["model_sha256"], file_sha256(_mf))
    def _fails(folder): (folder/"part").write_text("half"); raise OSError(28, "No space left on device")
    test_fail(lambda: install_folder(Path(d), "v2", _fails), contains="No space left")
    test_eq(sorted(f.name for f in Path(d).iterdir()), ["m.skops", "v1"])      # nothing half-written is left

# %% [code]
#| export
def build_package(model_file, package_dir, name: str, schema: dict, metrics: dict, lineage: dict,
                  intervals: dict | None = None, X_check: pd.DataFrame | None = None) -> dict:
    """Package `model_file` as a new version under `package_dir` and make it the champion; return the champion's pointer.
    A version packaged before is left as it is and the pointer is not moved (the registry may have promoted another
    since).
    The version is written to a temporary folder, flushed and renamed into place, and `current.json` is replaced last:
    an error at any point (a full disk, a folder that cannot be written) raises an OSError naming the folder and the
    file, and leaves the champion as it was."""
    model = load_trusted(model_file)          # refuse to package a model we could not serve
    package_dir = Path(package_dir)
    version = model_version(name, model_file)
    final, old = package_dir/version, _champion_name(package_dir)
    existed = (final/"model.skops").is_file()
    try:
        package_dir.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            install_folder(package_dir, version, lambda folder: write_version(
                model, model_file, folder, name, version, schema, metrics, lineage, intervals, X_check))
        # packaged before and the registry has changed the champion since: a re-run must not undo that promote or
        # rollback (a retry after a failed switch, with no registry history, still switches)
        if existed and old is not None and (package_dir/"history.jsonl").is_file():
            return read_json(package_dir/"current.json")
        pointer = {
            "version": version,
            "path": str(final),
            "model_sha256": file_sha256(final / "model.skops"),
            "promoted": now_utc(),
        }
        write_json(pointer, package_dir/"current.json")
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise OSError(
            e.errno,
            f"{package_dir}: packaging {version} failed: {e.strerror or e}{where}; current.json was not "
            f"switched, the champion is still {old or 'none (no model was packaged before)'}",
        ) from e
    return pointer

# %% [code]
with _tf.TemporaryDirectory() as d:
    m = save_model(LogisticRegression().fit([[0.0], [1.0]], ["a", "b"]), Path(d)/"m.skops")
    schema = {"target": "y", "task": "binary", "features": ["x"], "columns": {"x": {"kind": "numeric"}}}
    lin = {"git": {"commit": None, "dirty": None}, "data": {}}
    p = build_package(m, Path(d)/"pkg", "demo", schema, {"test": {"accuracy": 1.0}}, lin)
    test_eq(current_package(Path(d)/"pkg").name, p["version"])
    test_eq(
        sorted(f.name for f in current_package(Path(d) / "pkg").iterdir()),
        ["lineage.json", "model.skops", "model_card.md", "schema.json"],
    )
    test_eq(load_package(current_package(Path(d)/"pkg")).predict([[1.0]]).tolist(), ["b"])
    _p3 = build_package(
        save_model(LogisticRegression(C=0.3).fit([[0.0], [1.0]], ["a", "b"]), Path(d) / "m3.skops"),
        Path(d) / "pkg",
        "demo",
        schema,
        {"test": {"accuracy": 1.0}},
        lin,
    )
    (Path(d)/"pkg"/"history.jsonl").write_text("{}\n")          # the registry changed the champion since ...
    # ... so not re-promoted
    test_eq(build_package(m, Path(d)/"pkg", "demo", schema, {}, lin)["version"], _p3["version"])
    (Path(d)/"pkg"/"history.jsonl").unlink()                     # no registry history: a re-package switches (a retry)
    test_eq(build_package(m, Path(d)/"pkg", "demo", schema, {}, lin)["version"], p["version"])
    write_json(p, Path(d)/"pkg"/"current.json")
    with open(current_package(Path(d)/"pkg")/"model.skops", "ab") as f: f.write(b"x")      # tamper with it
    test_fail(lambda: load_package(current_package(Path(d)/"pkg")), contains="does not match the recorded")
    (Path(d)/"bad.skops").write_bytes(b"junk")
    test_fail(
        lambda: build_package(Path(d) / "bad.skops", Path(d) / "pkg", "demo", schema, {}, lin),
        contains="not a readable skops",
    )
    test_eq(current_package(Path(d)/"pkg").name, p["version"])       # the champion is untouched
    test_eq(len([f for f in (Path(d)/"pkg").iterdir() if f.name.startswith(".")]), 0)   # no temporary folder left
    (Path(d)/"pkg"/"current.json").write_text("{")                   # a broken pointer is a clear error
    test_fail(lambda: current_package(Path(d)/"pkg"), contains="not a champion pointer")
    write_json({"version": "demo-gone"}, Path(d)/"pkg"/"current.json")
    test_fail(lambda: current_package(Path(d)/"pkg"), contains="holds no packaged model")
    write_json(p, Path(d)/"pkg"/"current.json")
    _m2 = save_model(LogisticRegression(C=0.5).fit([[0.0], [1.0]], ["a", "b"]), Path(d)/"m2.skops")
    # an unwritable folder (as root, see tests/test_faults_model.py)
    os.chmod(Path(d)/"pkg", 0o555)
    try:
        if not os.access(Path(d)/"pkg", os.W_OK):
            test_fail(
                lambda: build_package(_m2, Path(d) / "pkg", "demo", schema, {}, lin),
                contains="the champion is still " + p["version"],
            )
    finally: os.chmod(Path(d)/"pkg", 0o755)
    test_eq(current_package(Path(d)/"pkg").name, p["version"])

# %% [markdown]
## Run

# %% [code]
os.chdir(find_root())
acceptance = read_json(require(acceptance_path, "run `mlops-nb step acceptance` first"))
if not acceptance["accepted"]: raise RuntimeError(f"{acceptance_path}: the model was not accepted; nothing to package")
schema = read_json(require(schema_path, "run `mlops-nb step validate` first"))
metrics = {"test": acceptance["test"], "baseline": acceptance["baseline"],
           "cv": read_json(Path(train_live_dir)/"metrics.json")["chosen"]}
lineage = collect_lineage(lineage_dir, steps_dir, load_params("params.yaml"))
intervals = read_json(require(Path(eval_dir) / "metrics_with_intervals.json", "run `mlops-nb step evaluate` first"))[
    "test"
]["intervals"]
test = pd.read_parquet(require(Path(split_dir)/"test.parquet", "run `mlops-nb step split` first"))
pointer = build_package(
    require(model_path, "run `mlops-nb step train` first"),
    package_dir,
    model_name,
    schema,
    metrics,
    lineage,
    intervals,
    test.drop(columns=[target]),
)
print(read_json(Path(pointer["path"])/"lineage.json")["onnx"])
record_step(
    lineage_dir,
    "package",
    {"model_name": model_name},
    inputs=[model_path, schema_path, acceptance_path, Path(eval_dir) / "metrics_with_intervals.json"],
    outputs=[pointer["path"]],
    metrics={"version": pointer["version"]},
)
print(f"champion: {pointer['version']} in {pointer['path']}")

