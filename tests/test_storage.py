"""Shared storage for real: the finished session project, committed to git, pushes to its default DVC remote (a real
folder beside it); a fresh `git clone` plus `mlops-nb pull` then has `dvc status` clean and serves the same champion
with the same predictions under uvicorn, without re-running any step. A remote folder that does not exist is refused
with its name and url, and nothing is changed."""
import hashlib, json, os, time
from pathlib import Path

import pandas as pd
import requests

from conftest import copy_finished, run, tool
from test_serve import stop_server
from test_serve_reload import start

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def digests(root: Path, top=("data", "models", "reports")) -> dict:
    "SHA-256 of every file under `top` (git-ignored outputs and dvclive files alike)."
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for t in top if (root/t).exists() for f in sorted((root/t).rglob("*")) if f.is_file()}


def rows(root: Path) -> list[dict]:
    return json.loads(pd.read_parquet(root/"data/processed/batch.parquet").drop(columns="species").to_json(orient="records"))


def test_push_then_clone_and_pull_serves_the_same_champion(project, tmp_path):
    from mlops_nb.registry import champion_version
    team = tmp_path/"team"
    orig = copy_finished(project, team/"orig")
    run([*GIT, "add", "-A"], orig); run([*GIT, "commit", "-qm", "the run"], orig)   # dvc.lock, dvclive files, sources
    assert run([tool("dvc"), "status"], orig).stdout.strip() == "Data and pipelines are up to date."
    storage = team/"mlops-nb-storage"        # .dvc/config: url ../../mlops-nb-storage, beside the project
    assert not storage.exists()

    t0 = time.perf_counter()
    out = run([tool("mlops-nb"), "push"], orig).stdout
    push_s = time.perf_counter() - t0
    assert f"to DVC remote 'storage' ({storage})" in out and storage.is_dir(), out
    assert "warning" not in out, out
    assert "pushed 0 file(s)" in run([tool("mlops-nb"), "push"], orig).stdout      # a second push sends nothing

    clone = team/"clone"
    run(["git", "clone", "-q", str(orig), str(clone)], team)
    assert not (clone/"models").exists() and not (clone/"data").exists()
    # a remote folder that is not there: refused, naming it, and nothing written
    nowhere = team/"nowhere/store"
    run([tool("dvc"), "remote", "modify", "--local", "storage", "url", str(nowhere)], clone)
    before = digests(clone)
    r = run([tool("mlops-nb"), "pull"], clone, check=False)
    assert r.returncode == 1 and f"DVC remote 'storage' ({nowhere}): the folder does not exist" in r.stderr, r
    assert "Traceback" not in r.stderr and digests(clone) == before and not (clone/"models").exists()
    (clone/".dvc/config.local").unlink()

    t0 = time.perf_counter()
    out = run([tool("mlops-nb"), "pull"], clone).stdout
    pull_s = time.perf_counter() - t0
    champion = champion_version(orig/"models/package")
    assert champion and f"champion: {champion}" in out, out
    assert run([tool("dvc"), "status"], clone).stdout.strip() == "Data and pipelines are up to date."
    # every output came back byte for byte: data snapshots, model packages, executed steps, reports
    assert digests(clone) == digests(orig)
    assert not list((clone/"reports/steps").glob("*.ipynb")) == []
    print(f"\npush {push_s:.1f} s + pull {pull_s:.1f} s = round trip {push_s + pull_s:.1f} s "
          f"({len(digests(orig))} files, {sum(f.stat().st_size for f in storage.rglob('*') if f.is_file()) / 2**20:.1f} MiB in the remote)")

    # the clone serves the same champion with the same predictions as the original project's package
    from mlops_nb.serve import load_model
    batch = rows(clone)
    expected = load_model(orig/"models/package").predict_rows(batch)[0]
    url, proc = start(clone, "--log-db", str(tmp_path/"log.db"))
    try:
        body = requests.post(f"{url}/predict", json=batch, timeout=60).json()
        assert body["model_version"] == champion
        assert [p["prediction"] for p in body["predictions"]] == expected
    finally:
        stop_server(proc)
    assert run([tool("dvc"), "status"], clone).stdout.strip() == "Data and pipelines are up to date."
