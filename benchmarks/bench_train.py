"""Train-phase benchmark: the whole search + refit on generated data of N rows x 20 mixed columns.

    python benchmarks/bench_train.py [--rows 1000000] [--budget 150] [--dask tcp://host:port]

Prints a table and writes benchmarks/results/train_<rows>.json. The target (issue: model phases) is the
whole train phase within 3 minutes on 2 cores for 1M x 20, by planning within `--budget` seconds.
"""
import argparse, json, os, platform, resource, sys, time
from pathlib import Path

import numpy as np
import pandas as pd


def generate(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, dict]:
    "14 numeric and 6 categorical columns (two of them with 1,000 values), a binary target that depends on both."
    rng = np.random.default_rng(seed)
    cols = {f"num_{i}": rng.normal(size=n).astype("float64") for i in range(14)}
    for i, k in enumerate([3, 5, 10, 50, 1000, 1000]):
        cols[f"cat_{i}"] = pd.Categorical.from_codes(rng.integers(0, k, n), [f"v{j}" for j in range(k)]).astype(str)
    X = pd.DataFrame(cols)
    X.loc[rng.random(n) < 0.05, "num_3"] = np.nan
    logit = X.num_0 - 0.8 * X.num_1 + 0.5 * (X.cat_0 == "v1") + 0.3 * np.sin(X.num_2 * 3) + rng.normal(scale=0.8, size=n)
    y = pd.Series(np.where(logit > 0, "pos", "neg"))
    schema = {"task": "binary", "features": list(X.columns),
              "columns": {c: {"kind": "numeric" if c.startswith("num") else "categorical"} for c in X.columns}}
    return X, y, schema


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--budget", type=float, default=150)
    ap.add_argument("--dask", default=None, help="tcp://host:port of a Dask scheduler (default: local)")
    ap.add_argument("--out", default=str(Path(__file__).parent/"results"))
    a = ap.parse_args(argv)
    import yaml
    from mlops_nb.train import train_candidates
    params = yaml.safe_load((Path(__file__).parents[1]/"params.yaml").read_text())["train"]
    t0 = time.perf_counter(); X, y, schema = generate(a.rows); gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, chosen, results, plan = train_candidates(X, y, schema, params["candidates"], "balanced_accuracy", params["spaces"],
                                                    params["cv_folds"], params["search_iter"], params["search"], 42,
                                                    a.budget, params["min_search_rows"], a.dask)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {"rows": a.rows, "columns": X.shape[1], "budget_s": a.budget, "backend": a.dask or "local", "generate_s": round(gen, 1),
           "train_phase_s": round(wall, 1), "peak_rss_gib": round(peak, 2), "chosen": chosen, "cpu_count": os.cpu_count(),
           "python": platform.python_version(),
           "families": {f: {"cv_balanced_accuracy": round(r["balanced_accuracy_mean"], 4), "std": round(r["balanced_accuracy_std"], 4),
                            "rows": r["rows"], "search_s": r["search_seconds"], "params": r["params"]} for f, r in results.items()},
           "plan": plan}
    print(f"\n{'family':<24}{'action':<12}{'rows':>9}{'search s':>10}{'cv bal.acc':>12}")
    for f, p in plan.items():
        r = out["families"].get(f, {})
        print(f"{f:<24}{p['action']:<12}{r.get('rows', 0):>9}{r.get('search_s', 0):>10.1f}{r.get('cv_balanced_accuracy', float('nan')):>12.4f}")
    print(f"train phase: {wall:.1f} s on {a.rows} x {X.shape[1]} (budget {a.budget} s, target < 180 s); peak RSS {peak:.2f} GiB")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    dest = Path(a.out)/f"train_{a.rows}.json"
    dest.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"written: {dest}")
    return 0 if wall < 180 else 1


if __name__ == "__main__":
    sys.exit(main())
