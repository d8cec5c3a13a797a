"""Model-layer faults, with real components: a disk that fills up or a folder that cannot be written while a model
is packaged (real OS errors: a small tmpfs mount, RLIMIT_FSIZE, an immutable or read-only folder), and model files that
were tampered with or hold a type outside the trusted list, refused by the library, the REST server and the batch scorer.

The shared `project` is only read: every test works on its own copy of the package folder.
"""
import contextlib, errno, json, os, resource, shutil, signal, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import free_port, mini_project, run, tool

# ---------------------------------------------------------------------------------------------------------------------
# helpers


def champion(package_dir: Path) -> str:
    return json.loads((package_dir/"current.json").read_text())["version"]


def listing(d: Path) -> dict:
    "Every file under `d` with its bytes (the package folder is small)."
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}


def assert_champion_intact(package_dir: Path, before: dict, version: str):
    "current.json is byte-identical, the champion loads (hash and types checked) and predicts, nothing half-written is left."
    from mlops_nb.serve import load_model
    assert (package_dir/"current.json").read_bytes() == before["current.json"]
    served = load_model(package_dir)
    assert served.version == version
    assert len(served.predict(pd.read_parquet(package_dir.parents[1]/"data/processed/batch.parquet"))) > 0
    left = [p.name for p in package_dir.iterdir() if p.name.startswith(".")]
    assert not left, f"temporary files left in {package_dir}: {left}"
    for name, data in before.items():     # every earlier version is byte-identical
        assert (package_dir/name).read_bytes() == data, name


@pytest.fixture(scope="module")
def new_model(project, tmp_path_factory):
    """A model file that is not the champion (a logistic regression on the same features), and what build_package needs
    to package it: schema, metrics, lineage, intervals, the check rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlops_nb.core import read_json, save_model
    from mlops_nb.features import feature_columns, make_preprocessor
    pkg = project/"models/package"
    cur = pkg/champion(pkg)
    schema, lineage = read_json(cur/"schema.json"), read_json(cur/"lineage.json")
    train = pd.read_parquet(project/"data/processed/train.parquet")
    X, y = train[schema["features"]], train[schema["target"]]
    m = Pipeline([("features", make_preprocessor(*feature_columns(schema, X.columns))), ("model", LogisticRegression(C=0.37, max_iter=500))])
    f = save_model(m.fit(X, y), tmp_path_factory.mktemp("model")/"other.skops")
    X_check = pd.read_parquet(project/"data/processed/test.parquet")[schema["features"]]
    return dict(model_file=f, name=cur.name.rsplit("-", 1)[0], schema=schema, metrics=lineage["metrics"], lineage=lineage,
                intervals=lineage.get("intervals"), X_check=X_check)


def package(m: dict, package_dir: Path) -> dict:
    from mlops_nb.package import build_package
    return build_package(m["model_file"], package_dir, m["name"], m["schema"], m["metrics"], m["lineage"], m["intervals"], m["X_check"])


@contextlib.contextmanager
def file_size_limit(n: int):
    "RLIMIT_FSIZE: a write past `n` bytes fails with EFBIG (SIGXFSZ ignored), as a full disk fails it with ENOSPC."
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    try: yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def try_mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None: return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@contextlib.contextmanager
def unwritable(d: Path):
    """`d` made unwritable for this process: `chattr +i` when we run as root (root ignores permission bits), else chmod."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
            pytest.skip("running as root and chattr +i is not available here: cannot make a folder unwritable")
        undo = ["chattr", "-i", str(d)]
    else:
        mode = d.stat().st_mode; os.chmod(d, 0o555); undo = None
    try:
        with pytest.raises(OSError):     # the fault is real: a plain write fails
            (d/".probe").write_text("x")
        yield
    finally:
        if undo: subprocess.run(undo, check=True)
        else: os.chmod(d, mode)


# ---------------------------------------------------------------------------------------------------------------------
# disk full or unwritable folder while packaging


def test_packaging_fails_cleanly_at_every_file_size_limit(project, new_model, tmp_path):
    """A write that fails at any point of packaging (RLIMIT_FSIZE at 0 bytes, then at limits that let the earlier files
    through and stop a later one) raises an OSError naming the package folder, and leaves the champion as it was."""
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    before, version = listing(pkg), champion(pkg)
    sizes = sorted({0, 100, 1_000, 5_000, 20_000, 100_000, new_model["model_file"].stat().st_size - 1})
    failed = []
    for n in sizes:
        with file_size_limit(n):
            try: package(new_model, pkg)
            except OSError as e:
                failed.append(n)
                assert e.errno == errno.EFBIG and str(pkg) in str(e) and "champion" in str(e), str(e)
            else: raise AssertionError(f"packaging succeeded under a {n}-byte file size limit")
        assert_champion_intact(pkg, before, version)
    assert failed == sizes
    p = package(new_model, pkg)            # with room again, the same call succeeds and switches the champion
    assert champion(pkg) == p["version"] != version


def test_a_full_disk_at_any_point_of_packaging_leaves_the_champion(project, new_model, tmp_path):
    """A real ENOSPC: the package folder on a small tmpfs, filled so that only k pages are free, for every k from 0
    until packaging fits, so that the disk runs out at each file in turn, the last one being current.json."""
    mnt = tmp_path/"mnt"
    if not try_mount_tmpfs(mnt, "8m"): pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        root = mini_project(project, mnt/"p"); pkg = root/"models/package"
        before, version = listing(pkg), champion(pkg)
        page = os.statvfs(mnt).f_frsize
        outcomes = []
        for k in range(0, 200):
            filler = mnt/"filler"
            filler.unlink(missing_ok=True)
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)          # fill the disk ...
            try:
                while os.write(fd, b"\0" * page): pass
            except OSError as e: assert e.errno == errno.ENOSPC
            finally: os.close(fd)
            os.truncate(filler, max(filler.stat().st_size - k * page, 0))     # ... then give back k pages
            try:
                p = package(new_model, pkg)
            except OSError as e:
                assert e.errno == errno.ENOSPC and str(pkg) in str(e), str(e)
                outcomes.append("failed")
                assert_champion_intact(pkg, before, version)
                continue
            outcomes.append("ok")
            assert champion(pkg) == p["version"] != version
            break
        filler.unlink()
        assert outcomes[-1] == "ok" and outcomes.count("failed") >= 3, outcomes
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_an_unwritable_package_folder_leaves_the_champion(project, new_model, tmp_path):
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    before, version = listing(pkg), champion(pkg)
    with unwritable(pkg):
        with pytest.raises(OSError, match="models/package"):
            package(new_model, pkg)
    assert_champion_intact(pkg, before, version)


def test_a_pointer_that_cannot_be_replaced_leaves_the_champion(project, new_model, tmp_path):
    "The new version folder is complete, only current.json cannot be switched (immutable): the champion stays, and a retry succeeds."
    if os.geteuid() != 0 or shutil.which("chattr") is None: pytest.skip("needs root and chattr to make one file immutable")
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    before, version = listing(pkg), champion(pkg)
    subprocess.run(["chattr", "+i", str(pkg/"current.json")], check=True)
    try:
        with pytest.raises(OSError, match="champion"):
            package(new_model, pkg)
    finally:
        subprocess.run(["chattr", "-i", str(pkg/"current.json")], check=True)
    assert_champion_intact(pkg, before, version)
    assert champion(pkg) == version
    assert package(new_model, pkg)["version"] == champion(pkg) != version


def test_the_package_step_with_an_unwritable_package_folder_keeps_the_champion(project, tmp_path):
    """`mlops-nb step package` (papermill, a real kernel) with a newly trained model and a package folder it cannot
    write: the step fails naming the folder, current.json and the champion stay as they were."""
    root = tmp_path/"p"
    shutil.copytree(project, root, symlinks=True)
    pkg = root/"models/package"
    before, version = listing(pkg), champion(pkg)
    from mlops_nb.core import load_trusted, save_model
    m = load_trusted(root/"models/trained.skops"); m.set_params(verbose=True)   # another file: a new version to package
    save_model(m, root/"models/trained.skops")
    with unwritable(pkg):
        r = run([tool("mlops-nb"), "step", "package"], root, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "step package failed" in r.stderr and "models/package: packaging" in r.stderr and f"the champion is still {version}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert_champion_intact(pkg, before, version)


# ---------------------------------------------------------------------------------------------------------------------
# tampered and untrusted model files


def untrusted_model(dest: Path) -> Path:
    "A valid skops file whose pipeline calls os.system: a type outside the trusted list."
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    import skops.io as sio
    sio.dump(make_pipeline(FunctionTransformer(os.system), LogisticRegression()), dest)
    return dest


def tamper(pkg: Path, how: str) -> str:
    "Change the champion's model file; return what the refusal must name."
    from mlops_nb.core import file_sha256, read_json, write_json
    cur = pkg/champion(pkg)
    f = cur/"model.skops"
    if how == "flipped byte":
        b = bytearray(f.read_bytes()); b[len(b) // 2] ^= 0xFF; f.write_bytes(bytes(b))
        return "does not match the recorded"
    if how == "swapped model":             # another valid model in its place, the recorded hash left alone
        untrusted_model(f)
        return "does not match the recorded"
    if how == "untrusted type":            # and with the recorded hashes updated too: only the type check stands
        untrusted_model(f)
        lin = read_json(cur/"lineage.json"); lin["model_sha256"] = file_sha256(f); write_json(lin, cur/"lineage.json")
        ptr = read_json(pkg/"current.json"); ptr["model_sha256"] = file_sha256(f); write_json(ptr, pkg/"current.json")
        return "untrusted types ['posix.system']"
    raise ValueError(how)


HOW = ["flipped byte", "swapped model", "untrusted type"]


@pytest.mark.parametrize("how", HOW)
def test_library_refuses_a_tampered_or_untrusted_model(project, tmp_path, how):
    from mlops_nb.core import UntrustedModelError
    from mlops_nb.package import TamperedModelError, current_package, load_package
    from mlops_nb.serve import load_model
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    expected = tamper(pkg, how)
    for load in (lambda: load_package(current_package(pkg)), lambda: load_model(pkg)):
        with pytest.raises((TamperedModelError, UntrustedModelError)) as e:
            load()
        assert expected in str(e.value) and "model.skops" in str(e.value) and "refusing to load" in str(e.value)


@pytest.mark.parametrize("how", HOW)
def test_server_refuses_to_start_on_a_tampered_or_untrusted_model(project, tmp_path, how):
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    expected = tamper(pkg, how)
    log_db = tmp_path/"log.db"
    r = run([tool("mlops-nb"), "serve", "--port", str(free_port()), "--log-db", str(log_db)], root, check=False, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mlops-nb serve: error:" in r.stderr and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "serving" not in r.stdout and not log_db.exists()


@pytest.mark.parametrize("how", HOW)
def test_batch_scorer_refuses_a_tampered_or_untrusted_model(project, tmp_path, how):
    root = mini_project(project, tmp_path/"p"); pkg = root/"models/package"
    expected = tamper(pkg, how)
    batch = tmp_path/"batch.parquet"
    shutil.copy2(root/"data/processed/batch.parquet", batch)
    db = tmp_path/"scores.db"
    r = run([tool("mlops-nb"), "predict", "--input", str(batch), "--db", str(db)], root, check=False, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "mlops-nb predict: error:" in r.stderr and expected in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not db.exists()
