"""Shipping benchmark: what `mlops-nb build image` and `mlops-nb build bundle` produce, and how fast the bundle answers.

    .venv/bin/python benchmarks/bench_ship.py [--project DIR] [--image] [--calls 2000] [--cold 5]

On the champion packaged in --project (default: this repository; run `bash tasks.sh run` first):
- image: the build context's size (app: entry point, modules and package; wheelhouse) and the serving virtualenv it
  makes (a fresh virtualenv from the wheelhouse alone, what the image's /opt/venv holds); with --image, and podman or
  docker here, the built image's size too (base image included);
- bundle: the .zip, its unpacked size, its requirements installed into a fresh virtualenv (the deployment size to hold
  against AWS Lambda's 250 MB limit for an unzipped package with its dependencies);
- the bundle's handler: cold start (a new Python process: import of `handler`, which loads the model, plus the first
  prediction; median of --cold processes) and the warm per-row latency (one-row events, median and p99 of --calls).
Prints the figures and writes them to benchmarks/results/ship.json. Not part of the test suite.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time, zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlops_nb.serverless import build_bundle
from mlops_nb.ship import build_image, build_image_context, find_engine, folder_bytes, unpacked_bytes

MiB = 2 ** 20

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from handler import handler
t1 = time.perf_counter()
row = json.loads(sys.argv[1]); event = {"body": json.dumps(row)}
r = handler(event, None)
t2 = time.perf_counter()
assert r["statusCode"] == 200, r
n = int(sys.argv[2]); lat = []
for _ in range(n):
    s = time.perf_counter(); handler(event, None); lat.append(time.perf_counter() - s)
lat.sort()
print(json.dumps({"import_s": t1 - t0, "first_prediction_s": t2 - t1,
                  "warm_p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
                  "warm_p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None}))
"""


def venv(path: Path, *pip_args) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path/"bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pip_args], check=True)
    return path/"bin/python"


def site_bytes(py: Path) -> int:
    "Bytes of the virtualenv's installed packages, without pip and setuptools (the image uninstalls pip)."
    site = next((py.parent.parent/"lib").glob("python3*/site-packages"))
    return sum(folder_bytes(p) if p.is_dir() else p.stat().st_size for p in site.iterdir()
               if not p.name.startswith(("pip", "setuptools", "_distutils_hack", "distutils-precedence")))


def test_row(project: Path) -> dict:
    import pandas as pd
    from mlops_nb.serve import load_model
    served = load_model(project/"models/package")
    X = pd.read_parquet(project/"data/processed/test.parquet")[served.features]
    return json.loads(X.iloc[:1].to_json(orient="records", double_precision=15))[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default=str(REPO))
    ap.add_argument("--image", action="store_true", help="also build the image with podman/docker and report its size")
    ap.add_argument("--calls", type=int, default=2000, help="warm one-row calls of the handler")
    ap.add_argument("--cold", type=int, default=5, help="new processes for the cold start")
    ap.add_argument("--out", default=str(REPO/"benchmarks/results/ship.json"))
    a = ap.parse_args(argv)
    project = Path(a.project).resolve()
    res = {"project": str(project)}
    with tempfile.TemporaryDirectory(prefix="bench-ship-") as d:
        d = Path(d)
        t0 = time.perf_counter()
        ctx = build_image_context(project, out=d/"image")
        res["image_context"] = {"seconds": round(time.perf_counter() - t0, 1), "total_mib": round(folder_bytes(ctx) / MiB, 1),
                                "app_mib": round(folder_bytes(ctx/"app") / MiB, 2),
                                "wheelhouse_mib": round(folder_bytes(ctx/"wheelhouse") / MiB, 1),
                                "requirements": len((ctx/"requirements.txt").read_text().split())}
        py = venv(d/"serving", "--no-index", "--find-links", str(ctx/"wheelhouse"), "-r", str(ctx/"requirements.txt"))
        subprocess.run(["find", str(d/"serving/lib"), "-depth", "-type", "d", "-name", "tests", "-path",
                        "*/site-packages/*/tests", "-exec", "rm", "-rf", "{}", "+"], check=True)   # as the Dockerfile does
        res["image_context"]["serving_venv_mib"] = round(site_bytes(py) / MiB, 1)
        res["image_context"]["app_plus_venv_mib"] = round((site_bytes(py) + folder_bytes(ctx/"app")) / MiB, 1)
        if a.image and (engine := find_engine()):
            t0 = time.perf_counter()
            img = build_image(ctx, engine=engine)
            res["image"] = {**img, "size_mib": round(img["size_bytes"] / MiB, 1), "build_seconds": round(time.perf_counter() - t0, 1)}
            base = json.loads(subprocess.run([engine, "image", "inspect", img["base"]], capture_output=True, text=True).stdout)[0]
            res["image"]["base_mib"] = round(int(base.get("Size") or 0) / MiB, 1)
        z = build_bundle(project, out=d/"bundle.zip")
        with zipfile.ZipFile(z) as f: f.extractall(d/"bundle")
        meta = json.loads((d/"bundle/model/bundle.json").read_text())
        bpy = venv(d/"bundle-venv", "-r", str(d/"bundle/requirements.txt"))
        res["bundle"] = {"backend": meta["backend"], "zip_mib": round(z.stat().st_size / MiB, 3),
                         "unpacked_mib": round(unpacked_bytes(z) / MiB, 3),
                         "dependencies_mib": round(site_bytes(bpy) / MiB, 1),
                         "deployment_mib": round((unpacked_bytes(z) + site_bytes(bpy)) / MiB, 1), "lambda_limit_mib": 250,
                         "requirements": (d/"bundle/requirements.txt").read_text().split()}
        row, runs = json.dumps(test_row(project)), []
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        for i in range(a.cold):
            t0 = time.perf_counter()
            out = subprocess.run([str(bpy), "-c", PROBE, row, str(a.calls if i == 0 else 0)], cwd=d/"bundle",
                                 capture_output=True, text=True, check=True, env=env)
            runs.append({**json.loads(out.stdout), "process_s": time.perf_counter() - t0})
        cold = [r["import_s"] + r["first_prediction_s"] for r in runs]
        res["handler"] = {"cold_start_s": round(statistics.median(cold), 3),
                          "cold_start_process_s": round(statistics.median(r["process_s"] for r in runs[1:] or runs), 3),
                          "import_s": round(statistics.median(r["import_s"] for r in runs), 3),
                          "warm_row_p50_ms": round(runs[0]["warm_p50_ms"], 4), "warm_row_p99_ms": round(runs[0]["warm_p99_ms"], 4),
                          "calls": a.calls, "cold_runs": a.cold}
    res["machine"] = {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps(res, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
