"""Issue 13: a feature over 90% missing, dropped or kept (imputed with a missing indicator)? 5-fold CV balanced accuracy
on the test suite's sparse table (tests/test_rows.py: sparse_csv), 900 rows, and on 5 seeds of it."""
import sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/"tests"))
from test_rows import sparse_csv
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
res = {}
for seed in range(5):
    for n in (900, 5000):
        df = sparse_csv(Path(tempfile.mkdtemp())/"f.csv", n=n, seed=seed)
        df["awards"] = df.awards.replace("", np.nan)
        y = df.hit
        for keep in (False, True):
            num = ["x1", "x2"] + (["budget"] if keep else []); cat = ["genre"] + (["awards"] if keep else [])
            for name, est in [("logistic", LogisticRegression(max_iter=1000)), ("hgb", HistGradientBoostingClassifier())]:
                pre = ColumnTransformer([("n", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), num),
                                         ("c", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                                             OneHotEncoder(handle_unknown="ignore")), cat)])
                s = cross_val_score(make_pipeline(pre, est), df[num + cat], y, scoring="balanced_accuracy",
                                    cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
                res.setdefault((name, n, keep), []).append(s)
for (name, n, keep), v in sorted(res.items()):
    print(f"{name:9s} n={n:5d} {'kept+indicator' if keep else 'dropped       '} balanced acc {np.mean(v):.4f} (seeds {min(v):.4f}-{max(v):.4f})")
