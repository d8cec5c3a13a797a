"""Property-based tests (hypothesis) of the schema check of serving payloads and of the wrangling transformers, on
random schemas, rows and frames. No project or pipeline is needed: these call the exported functions directly.

- `serve.conform` (what the library, the REST service and the batch scorer check rows with): whatever the rows, it
  returns; rows whose values all fit give a frame with the schema's features in order, numbers as float64, one row per
  input row; rows with a value that does not fit give errors naming exactly the columns at fault; never another
  exception. The REST request model agrees with it: a row it accepts, conform accepts; one it refuses names the column.
- `features.missing_to_nan`, `features.make_preprocessor`, `wrangle.clean` on random frames: no crash, one output row per
  input row (clean: one per distinct row with a target), no missing value out of the imputed pipelines, deterministic.
"""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from mlops_nb.inputs import SchemaError, conform, request_model
from mlops_nb.features import make_preprocessor, missing_to_nan
from mlops_nb.wrangle import clean

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = st.sampled_from(["a", "b c", "x1", "Länge", "price_$", "z"])
CATS = st.lists(st.sampled_from(["red", "green", "blue", "Ünïcode", "", "a b"]), min_size=1, max_size=4, unique=True)


@st.composite
def schemas(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    cols = {}
    for n in names:
        kind = draw(st.sampled_from(["numeric", "categorical"]))
        if kind == "numeric":
            lo = draw(st.floats(-1e3, 1e3)); cols[n] = {"kind": "numeric", "nullable": draw(st.booleans()), "min": lo, "max": lo + draw(st.floats(0, 1e3))}
        else:
            cols[n] = {"kind": "categorical", "nullable": draw(st.booleans()), "categories": draw(CATS)}
    return {"target": "y", "task": "binary", "features": names, "columns": cols}


MISSING = st.sampled_from([None, float("nan")])
GOOD_NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-10**6, 10**6),
                        st.floats(-1e6, 1e6).map(repr), MISSING)
BAD_NUMBER = st.one_of(st.text(alphabet="xyzqw", min_size=1, max_size=5), st.booleans())      # no letter of nan/inf/e
GOOD_TEXT = st.one_of(st.text(max_size=8), MISSING)
BAD_TEXT = st.one_of(st.integers(-5, 5), st.floats(-5, 5).filter(lambda v: v == v), st.booleans())


@st.composite
def rows_for(draw, schema):
    "Rows (dicts) for `schema`, each value good or bad for its column; returns (rows, the columns given a bad value)."
    n = draw(st.integers(1, 6))
    rows, bad = [{} for _ in range(n)], set()
    for c in schema["features"]:
        numeric = schema["columns"][c]["kind"] == "numeric"
        col_bad = draw(st.booleans()) and draw(st.booleans())     # a quarter of the columns hold a bad value
        for i, r in enumerate(rows):
            if col_bad and i == 0: r[c] = draw(BAD_NUMBER if numeric else BAD_TEXT)
            else: r[c] = draw(GOOD_NUMBER if numeric else GOOD_TEXT)
        if col_bad: bad.add(c)
    return rows, bad


@SETTINGS
@given(st.data())
def test_conform_accepts_fitting_rows_and_names_every_column_at_fault(data):
    schema = data.draw(schemas())
    rows, bad = data.draw(rows_for(schema))
    if data.draw(st.booleans()): rows = [{**r, "extra": 1} for r in rows]     # extra columns are ignored
    X, errors, warns = conform(pd.DataFrame(rows), schema)
    assert {e["column"] for e in errors} == bad, (rows, errors)
    for p in errors + warns:
        assert p["column"] in schema["features"] and repr(p["column"]) in p["message"]
    if not bad:
        assert list(X.columns) == schema["features"] and len(X) == len(rows)
        for c in schema["features"]:
            if schema["columns"][c]["kind"] == "numeric": assert X[c].dtype == np.float64
            else: assert X[c].map(lambda v: isinstance(v, str) or v is None or v != v).all()


@SETTINGS
@given(st.data())
def test_a_missing_column_is_named(data):
    schema = data.draw(schemas())
    rows, _ = data.draw(rows_for(schema))
    gone = data.draw(st.sampled_from(schema["features"]))
    X, errors, _ = conform(pd.DataFrame(rows).drop(columns=[gone]), schema)
    assert [e["column"] for e in errors] == [gone] and errors[0]["problem"] == "missing"


@SETTINGS
@given(st.data())
def test_the_rest_request_model_agrees_with_conform(data):
    "What POST /predict accepts (the pydantic row model), conform accepts; what it refuses is refused naming the column."
    from pydantic import ValidationError
    schema = data.draw(schemas())
    Row = request_model(schema)
    rows, bad = data.draw(rows_for(schema))
    for i, r in enumerate(rows):
        bad_here = bad if i == 0 else set()          # rows_for puts the bad values in the first row
        nan = {c for c, v in r.items() if isinstance(v, float) and v != v}   # JSON has no NaN: the model refuses it, conform takes it as missing
        try: m = Row.model_validate(r)
        except ValidationError as e:
            named = {str(err["loc"][0]) for err in e.errors()}
            assert bad_here <= named <= bad_here | nan and named, (r, e.errors())
            continue
        assert not bad_here, (r, bad_here)
        X, errors, _ = conform([m.model_dump(by_alias=True)], schema)
        assert errors == [], (r, errors)
        assert list(X.columns) == schema["features"]


# --- wrangling -------------------------------------------------------------------------------------------------------

MISSING_ANY = st.sampled_from([None, float("nan"), pd.NA])


@st.composite
def frames(draw, min_rows=1):
    "A frame of numeric and categorical columns with every kind of missing value; each column has one observed value."
    n = draw(st.integers(min_rows, 25))
    num = draw(st.lists(st.sampled_from(["n1", "n2", "n3"]), min_size=0, max_size=3, unique=True))
    cat = draw(st.lists(st.sampled_from(["c1", "c2"]), min_size=0, max_size=2, unique=True))
    assume(num or cat)
    cols = {}
    for c in num:
        vals = draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.none()), min_size=n, max_size=n))
        vals[0] = draw(st.floats(-1e6, 1e6))          # validate's missing-share gate: no column is empty
        cols[c] = pd.Series(vals, dtype=float)
    for c in cat:
        vals = draw(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d"]), MISSING_ANY), min_size=n, max_size=n))
        vals[0] = draw(st.sampled_from(["a", "b"]))
        cols[c] = pd.Series(vals, dtype=object)
    return pd.DataFrame(cols), num, cat


def dense(z):
    return z.toarray() if hasattr(z, "toarray") else np.asarray(z, dtype=float)


@SETTINGS
@given(frames(), st.sampled_from(["onehot", "ordinal"]), st.booleans())
def test_preprocessor_keeps_rows_imputes_everything_and_is_deterministic(fx, encoding, scale):
    X, num, cat = fx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = make_preprocessor(num, cat, scale=scale, encoding=encoding).fit(X)
        b = make_preprocessor(num, cat, scale=scale, encoding=encoding).fit(X.copy())
        za, zb = dense(a.transform(X)), dense(b.transform(X))
    assert za.shape[0] == len(X)
    assert not np.isnan(za).any()
    assert np.array_equal(za, zb) and np.array_equal(za, dense(a.transform(X)))
    # unseen rows: new categories and all-missing rows still give one finite row each
    new = pd.DataFrame({**{c: [np.nan, 1e5] for c in num}, **{c: [None, "never seen"] for c in cat}})[list(X.columns)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zn = dense(a.transform(new))
    assert zn.shape == (2, za.shape[1]) and np.isfinite(zn).all()


@SETTINGS
@given(frames())
def test_missing_to_nan_turns_every_missing_value_into_nan_and_keeps_the_rest(fx):
    X, _, cat = fx
    assume(cat)
    out = missing_to_nan(X[cat])
    assert out.shape == X[cat].shape and (out.dtypes == object).all()
    for c in cat:
        for v, w in zip(X[c], out[c]):
            if pd.isna(v): assert isinstance(w, float) and math.isnan(w)
            else: assert w == v
    assert missing_to_nan(out).equals(out)


@SETTINGS
@given(frames(), st.data())
def test_clean_keeps_one_row_per_distinct_labelled_row_and_is_idempotent(fx, data):
    X, num, cat = fx
    X = X.assign(species=data.draw(st.lists(st.one_of(st.sampled_from(["A", "B"]), st.none()), min_size=len(X), max_size=len(X))))
    drop = data.draw(st.lists(st.sampled_from(list(X.columns[:-1])), unique=True, max_size=1)) if len(X.columns) > 1 else []
    out = clean(X, "species", drop, drop_duplicates=True)          # repeated rows are kept unless asked (issue 13)
    labelled = X[X["species"].notna()].drop(columns=drop)
    assert list(out.columns) == [c for c in X.columns if c not in drop]
    assert len(out) == len(labelled.drop_duplicates())
    assert out["species"].notna().all() and not out.duplicated().any()
    assert clean(out, "species", drop_duplicates=True).equals(out) and clean(X, "species", drop, drop_duplicates=True).equals(out)
    assert len(clean(X, "species", drop)) == len(labelled)                          # by default every labelled row stays
    with pytest.raises(KeyError, match="wrangle.drop_columns"):
        clean(X, "species", ["no such column"])
