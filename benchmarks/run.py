"""The benchmark suite: pipeline overhead, scale, serving. One command: `bash tasks.sh bench` (= this script).

    .venv/bin/python benchmarks/run.py [--quick] [--sizes 100000,1000000] [--skip-scale] [--skip-serve]

1. overhead: the whole pipeline on the bundled data, `mlops-nb run --force` in a fresh copy of the project, against the
   same phases called from one plain Python process (benchmarks/plain_pipeline.py) in another fresh copy. Per step:
   the stage's wall time (benchmarks/step_wrap.py wraps each dvc.yaml command), the papermill time the step recorded,
   the notebook's cell times (papermill's per-cell durations: Run section vs definitions and their tests), the plain
   phase time; and what the fixed costs are (Python start and imports, kernel start and shutdown, HTML, DVC).
2. scale: the full pipeline (`mlops-nb run`) on generated data of 100k and 1M rows x 20 mixed columns (a Parquet file
   named by `ingest.source` in a project copy): wall time and peak RSS per step. Targets: 1M under 5 min and 6 GiB.
3. serving: benchmarks/bench_serve.py (REST latency and throughput, batch scoring), plus the stored figures of
   bench_train.py and bench_monitor.py from benchmarks/results/ when present.

Writes reports/benchmarks/benchmarks.json and reports/benchmarks/benchmarks.md (and a copy of the JSON to
benchmarks/results/benchmarks.json, which git keeps). The machine may be shared: the load average is recorded.
"""
import argparse, json, os, re, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO/"benchmarks"
PY = sys.executable
BIN = Path(PY).parent


def env() -> dict:
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "YDATA_PROFILING_NO_ANALYTICS": "True",
            "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", "")}


def sh(cmd, cwd=None, timeout=3600, check=True) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env())
    dt = time.perf_counter() - t0
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r, dt


def copy_project(dest: Path) -> Path:
    "A fresh copy of the project's source files (tracked, and new ones not ignored), committed in a new git repository."
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        if (REPO/f).is_file():
            (dest/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(REPO/f, dest/f)
    commit(dest, "benchmark project", init=True)
    return dest


def commit(root: Path, msg: str, init=False):
    e = {**env(), "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    cmds = ([["git", "init", "-q", "-b", "main"]] if init else []) + [["git", "add", "-A"], ["git", "commit", "-qm", msg]]
    for c in cmds: subprocess.run(c, cwd=root, check=True, env=e, capture_output=True)


def wrap_stages(root: Path, out_dir: Path):
    "Put benchmarks/step_wrap.py in front of every stage command of dvc.yaml, so that each stage records its wall time and peak RSS."
    text = (root/"dvc.yaml").read_text()
    stages = []
    # the stage name is the key two spaces in under `stages:`; its cmd follows
    out, stage = [], None
    for line in text.splitlines():
        m = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if m: stage = m.group(1)
        c = re.match(r"^(\s+cmd:\s*)(.+)$", line)
        if c and stage:
            line = f"{c.group(1)}{PY} {BENCH/'step_wrap.py'} {out_dir} {stage} {c.group(2)}"
            stages.append(stage)
        out.append(line)
    (root/"dvc.yaml").write_text("\n".join(out) + "\n")
    return stages


def read_json(p, default=None):
    try: return json.loads(Path(p).read_text())
    except (OSError, ValueError): return default


def cell_times(nb_path: Path) -> dict:
    "Seconds spent in the notebook's cells before its Run section (definitions, their tests) and in the Run section; the two slowest cells."
    nb = read_json(nb_path, {})
    before = run = 0.0; in_run = False; cells = []
    for c in nb.get("cells", []):
        if c.get("cell_type") != "code": continue
        src = "".join(c.get("source", ""))
        if src.lstrip().startswith("os.chdir(find_root())"): in_run = True
        d = (c.get("metadata", {}).get("papermill", {}) or {}).get("duration") or 0.0
        if in_run: run += d
        else: before += d
        label = "Run section" if src.lstrip().startswith("os.chdir(find_root())") else (src.strip().splitlines() or [""])[0][:80]
        cells.append((d, label))
    slow = [{"s": round(d, 2), "cell": first} for d, first in sorted(cells, reverse=True)[:2]]
    return {"definitions_and_tests_s": round(before, 3), "run_section_s": round(run, 3), "slowest_cells": slow}


def run_pipeline(root: Path, force: bool, timeout: float) -> dict:
    "`mlops-nb run` in `root` with every stage wrapped; per stage: wall, peak RSS, papermill seconds, cell times, status."
    stage_dir = root.parent/f"{root.name}-stages"
    shutil.rmtree(stage_dir, ignore_errors=True)
    wrap_stages(root, stage_dir)
    commit(root, "benchmark: wrapped stages")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN/"mlops-nb"), "run"] + (["--force"] if force else []), cwd=root, env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try: out, timed_out = proc.communicate(timeout=timeout)[0], False
    except subprocess.TimeoutExpired:      # stop DVC, the step and its kernel: the whole process group
        os.killpg(proc.pid, signal.SIGTERM)
        try: out = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); out = proc.communicate()[0]
        timed_out = True
    wall = time.perf_counter() - t0
    r = subprocess.CompletedProcess(proc.args, proc.returncode if not timed_out else -1, out or "", "")
    from mlops_nb.pipeline import STEPS
    params = __import__("yaml").safe_load((root/"params.yaml").read_text())
    steps_dir = root/params["paths"].get("steps_dir", "reports/steps")
    stages = {}
    for name in [*STEPS, "report"]:
        w = read_json(stage_dir/f"{name}.json")
        if w is None: continue
        rec = read_json(steps_dir/f"{name}.json", {}) if name in STEPS else {}
        # inside `mlops-nb run` the step executes in the run's own process and kernel (the stage command only relays),
        # so the step's own record, sampled from its kernel, holds the step's peak; the wrapper sees the relay
        peak = max(w["peak_rss_mib"] or 0, rec.get("kernel_peak_rss_mib") or 0)
        s = {"wall_s": w["wall_s"], "peak_rss_mib": peak, "returncode": w["returncode"],
             "papermill_s": rec.get("seconds"), "status": rec.get("status", "ok" if w["returncode"] == 0 else "failed"),
             "error": rec.get("error")}
        if name in STEPS: s.update(cell_times(steps_dir/f"{STEPS[name]}.ipynb"))
        stages[name] = s
    unfinished = next((n for n in [*STEPS, "report"] if n not in stages), None)
    return {"returncode": r.returncode, "wall_s": round(wall, 2), "stages": stages, "timed_out": timed_out,
            "unfinished_stage": unfinished if r.returncode else None,
            "stages_wall_sum_s": round(sum(s["wall_s"] for s in stages.values()), 2),
            "tail": (r.stdout + r.stderr)[-1500:] if r.returncode else None}


def py_time(code: str, repeat: int = 3) -> float:
    "Best of `repeat` wall times of `python -c code`."
    best = float("inf")
    for _ in range(repeat):
        _, dt = sh([PY, "-c", code]); best = min(best, dt)
    return round(best, 3)


def import_top(module: str, n: int = 6) -> list:
    "The slowest imports (cumulative) under `import module`, from python -X importtime."
    r = subprocess.run([PY, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, env=env())
    rows = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m: rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    best = {}     # per top-level package other than `module` itself: its slowest import (cumulative)
    for c, _, m in rows:
        top = m.split(".")[0]
        if top != module.split(".")[0] and c > best.get(top, (0, ""))[0]: best[top] = (c, m)
    top = sorted(best.values(), reverse=True)[:n]
    return [{"module": m, "cumulative_s": round(c / 1e6, 3)} for c, m in top]


KERNEL = """
import time
t0 = time.perf_counter()
from jupyter_client.manager import start_new_kernel
t1 = time.perf_counter()
km, kc = start_new_kernel(kernel_name="python3")
t2 = time.perf_counter()
kc.execute_interactive("1 + 1", timeout=60)
t3 = time.perf_counter()
kc.stop_channels(); km.shutdown_kernel(now=False)
t4 = time.perf_counter()
print(round(t1 - t0, 3), round(t2 - t1, 3), round(t3 - t2, 3), round(t4 - t3, 3))
"""

RENDER = """
import sys, time
t0 = time.perf_counter()
from mlops_nb.report_pages import render_html
t1 = time.perf_counter()
render_html(sys.argv[1], sys.argv[2])
print(round(t1 - t0, 3), round(time.perf_counter() - t1, 3))
"""


def fixed_costs(done_project: Path) -> dict:
    "What a step pays whatever it computes."
    out = {"python_start_s": py_time("pass")}
    out["import_papermill_nbformat_s"] = round(py_time("import papermill, nbformat") - out["python_start_s"], 3)
    out["import_mlops_nb_cli_s"] = round(py_time("import mlops_nb.cli") - out["python_start_s"], 3)
    out["mlops_nb_help_s"] = round(min(sh([BIN/"mlops-nb", "--help"])[1] for _ in range(3)), 3)
    out["slowest_imports_under_papermill"] = import_top("papermill")
    k = sh([PY, "-c", KERNEL])[0].stdout.split()
    out["kernel"] = {"import_jupyter_client_s": float(k[0]), "start_s": float(k[1]), "first_execute_s": float(k[2]), "shutdown_s": float(k[3])}
    nb = done_project/"reports/steps/05_train.ipynb"
    if nb.exists():
        h = sh([PY, "-c", RENDER, nb, done_project.parent/"render_check.html"])[0].stdout.split()
        out["html"] = {"import_nbconvert_s": float(h[0]), "render_05_train_s": float(h[1])}
    _, noop = sh([BIN/"dvc", "repro"], cwd=done_project)
    out["mlops_nb_run_noop_s"] = round(min(sh([BIN/"mlops-nb", "run"], cwd=done_project)[1] for _ in range(3)), 3)
    _, status = sh([BIN/"dvc", "status"], cwd=done_project)
    out["dvc"] = {"repro_nothing_to_do_s": round(noop, 3), "status_s": round(status, 3)}
    return out


def overhead(work: Path, timeout: float) -> dict:
    print("== overhead: `mlops-nb run --force` on the bundled data", flush=True)
    a = copy_project(work/"nb"); plain = copy_project(work/"plain")
    load0 = os.getloadavg()
    nb = run_pipeline(a, force=True, timeout=timeout)
    if nb["returncode"] != 0: raise RuntimeError(f"mlops-nb run failed:\n{nb['tail']}")
    print(f"   {nb['wall_s']} s", flush=True)
    print("== overhead: the same phases from one plain Python process", flush=True)
    _, pwall = sh([PY, BENCH/"plain_pipeline.py", "--project", plain, "--out", work/"plain.json"], cwd=plain, timeout=timeout)
    p = read_json(work/"plain.json")
    print(f"   {pwall:.1f} s", flush=True)
    steps, rows = {}, []
    for name, s in nb["stages"].items():
        ph = p["phases"].get(name, {}).get("seconds", 0.0)
        o = {"stage_wall_s": s["wall_s"], "plain_s": ph, "overhead_s": round(s["wall_s"] - ph, 3)}
        if s.get("papermill_s") is not None:
            cells = s["definitions_and_tests_s"] + s["run_section_s"]
            o.update(outside_papermill_s=round(s["wall_s"] - s["papermill_s"], 3),           # python start, imports, params, HTML
                     kernel_and_papermill_s=round(s["papermill_s"] - cells, 3),              # kernel start/shutdown, cell round trips
                     notebook_definitions_and_tests_s=s["definitions_and_tests_s"],
                     run_section_s=s["run_section_s"])
        steps[name] = o
    n = len(steps)
    over = sum(o["overhead_s"] for o in steps.values())
    tests = sum(o.get("notebook_definitions_and_tests_s", 0) for o in steps.values())
    fixed = fixed_costs(a)
    res = {"pipeline_wall_s": nb["wall_s"], "plain_wall_s": round(pwall, 2), "plain_phases_s": round(sum(v["seconds"] for v in p["phases"].values()), 2),
           "plain_first_imports_s": p["first_imports_s"], "ratio": round(nb["wall_s"] / pwall, 2),
           "stages": n, "dvc_between_stages_s": round(nb["wall_s"] - nb["stages_wall_sum_s"], 2),
           "overhead_per_step_s": round(over / n, 2),
           "overhead_per_step_without_notebook_tests_s": round((over - tests) / n, 2),
           "target_per_step_s": 1.0, "within_target": over / n <= 1.0,
           "per_step": steps, "fixed_costs": fixed, "load_average_at_start": load0}
    parts = {"Python start + imports + params + HTML (outside papermill)": sum(o.get("outside_papermill_s", 0) for o in steps.values()),
             "kernel start/shutdown and papermill": sum(o.get("kernel_and_papermill_s", 0) for o in steps.values()),
             "the notebooks' definition and test cells": tests,
             "DVC between stages": res["dvc_between_stages_s"],
             "the report stage's process": steps.get("report", {}).get("overhead_s", 0)}
    res["overhead_breakdown_s"] = {k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    res["dominated_by"] = next(iter(res["overhead_breakdown_s"]))
    return res


def scale(n: int, work: Path, timeout: float, profile_minimal: bool, big_timeout: float = 600) -> dict:
    print(f"== scale: {n:,} rows x 20 columns", flush=True)
    sys.path.insert(0, str(BENCH))
    from bench_train import generate
    import pandas as pd, yaml
    t0 = time.perf_counter()
    X, y, _ = generate(n, seed=1)
    data = work/f"generated_{n}.parquet"
    X.assign(target=y).to_parquet(data, index=False)
    gen, columns = time.perf_counter() - t0, X.shape[1]
    del X, y   # at 10M rows the frame is ~7 GiB that the pipeline run beside it would not have
    root = copy_project(work/f"scale_{n}")
    p = yaml.safe_load((root/"params.yaml").read_text())
    p["ingest"]["source"] = str(data)
    p["project"].update(target="target", primary_metric="balanced_accuracy")
    p["package"]["model_name"] = f"generated-{n}"
    p["acceptance"].update(min_primary_metric=0.6)
    if profile_minimal: p["validate"]["profile_minimal"] = True
    (root/"params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    commit(root, f"generated data, {n} rows")
    load0 = os.getloadavg()
    timeout = timeout if n < 1_000_000 else min(timeout, big_timeout)
    r = run_pipeline(root, force=False, timeout=timeout)
    peak = max((s["peak_rss_mib"] for s in r["stages"].values()), default=0) / 1024
    res = {"rows": n, "columns": columns, "data_mib": round(data.stat().st_size / 2**20, 1), "generate_s": round(gen, 1),
           "returncode": r["returncode"], "wall_s": r["wall_s"], "peak_rss_gib": round(peak, 2),
           "profile_minimal": profile_minimal, "load_average_at_start": load0,
           "timed_out": r["timed_out"], "unfinished_stage": r["unfinished_stage"], "timeout_s": timeout,
           "stages": {k: {f: v.get(f) for f in ("wall_s", "papermill_s", "peak_rss_mib", "status", "error", "definitions_and_tests_s",
                                                 "run_section_s", "slowest_cells")} for k, v in r["stages"].items()}}
    if n >= 1_000_000:
        res["targets"] = {"under_5_min": r["wall_s"] < 300 and r["returncode"] == 0, "under_6_gib": peak < 6, "completed": r["returncode"] == 0}
    if r["returncode"]: res["tail"] = r["tail"]
    print(f"   {r['wall_s']} s, peak RSS {peak:.2f} GiB, exit {r['returncode']}", flush=True)
    shutil.rmtree(root, ignore_errors=True); data.unlink(missing_ok=True)
    return res


def serving(work: Path, project: Path, rows: int, requests: int, timeout: float) -> dict:
    print(f"== serving: bench_serve.py (batch of {rows:,} rows, {requests} requests)", flush=True)
    out = work/"serve.json"
    r, wall = sh([PY, BENCH/"bench_serve.py", "--project", project, "--rows", rows, "--requests", requests, "--out", out],
                 cwd=REPO, timeout=timeout, check=False)
    res = {"wall_s": round(wall, 1), "returncode": r.returncode}
    s = read_json(out)
    if s is None:
        res["error"] = (r.stdout + r.stderr)[-1500:]; return res
    g, b = s["generated"], s.get("bundled", {})
    res.update(args={"rows": rows, "requests": requests},
               generated_rest_fast=g["rest"].get("fast_path"), generated_rest_health=g["rest"].get("health_floor"),
               bundled_rest=b.get("rest"), batch=g.get("batch"), targets=s.get("targets"),
               load_average=[s.get("load_average_at_start"), s.get("load_average_at_end")])
    return res


def stored() -> dict:
    "Figures of the phase benchmarks run on their own (bench_train.py, bench_monitor.py), as stored in benchmarks/results/."
    out = {}
    for f in sorted((BENCH/"results").glob("train_*.json")):
        d = read_json(f, {}); out[f.stem] = {k: d.get(k) for k in ("rows", "columns", "train_phase_s", "peak_rss_gib", "chosen", "budget_s")}
    m = read_json(BENCH/"results/monitor.json")
    if m: out["monitor"] = {k: m.get(k) for k in ("rows_monitored", "seconds_total", "rows_per_second", "within_target", "finished")}
    return out


def test_command(path: Path) -> dict | None:
    "The last `bash tasks.sh test` whose JUnit file is `path` (tasks.sh writes reports/test-results.xml): pytest's session."
    import xml.etree.ElementTree as ET
    try: top = ET.parse(path).getroot()
    except (OSError, ET.ParseError): return None
    s = top if top.tag == "testsuite" else top.find("testsuite")
    if s is None: return None
    n = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {"seconds": round(float(s.get("time", 0)), 1), **n, "when": s.get("timestamp"), "file": str(path)}


def stored_scale(rows: int, folder: Path = BENCH/"results/issue-18") -> dict | None:
    """The newest complete scale run of `rows` rows that this script stored under `folder` (a run of its own: 10M rows take
    ~13 minutes, so the default sizes leave it out), with the file and date it comes from; None when there is none."""
    runs = []
    for f in folder.glob("*.json"):
        d = read_json(f, {}) or {}
        r = (d.get("scale") or {}).get(str(rows)) if isinstance(d, dict) else None
        if r and r.get("returncode") == 0 and not r.get("timed_out"):
            runs.append((str(d.get("when")), {**r, "stored_in": str(f.relative_to(REPO)), "when": d.get("when")}))
    return max(runs, key=lambda t: t[0])[1] if runs else None


def targets(res: dict) -> list[dict]:
    """Each target of issue 18 with the value this run measured and whether it is met (None: not measured in this run).
    10M rows, when this run did not measure them, come from the newest stored run (`stored_scale`), marked as such."""
    o, sc, sv = res.get("overhead") or {}, res.get("scale") or {}, res.get("serving") or {}
    big = sc.get("10000000") or stored_scale(10_000_000) or {}
    how = f" (stored run of {str(big['when'])[:10]}: {big['stored_in']})" if big.get("stored_in") else ""
    ev = lambda n: ((sc.get(str(n)) or {}).get("stages") or {}).get("evaluate", {}).get("wall_s")
    rows = [("overhead per step vs the plain process (s)", o.get("overhead_per_step_s"), 1.0),
            ("mlops-nb run --force / plain process (x)", o.get("ratio"), 1.4),
            ("evaluate on the bundled data, stage wall (s)", ((o.get("per_step") or {}).get("evaluate") or {}).get("stage_wall_s"), 5.0),
            ("evaluate at 1M rows, stage wall (s)", ev(1_000_000), 15.0),
            ("no-op `mlops-nb run` (s, best of 3)", (o.get("fixed_costs") or {}).get("mlops_nb_run_noop_s"), 1.0),
            (f"10M x 20 rows, whole pipeline (s){how}", big.get("wall_s"), 900.0),
            (f"10M x 20 rows, peak memory (GiB){how}", big.get("peak_rss_gib"), 12.0)]
    out = [{"target": t, "value": v, "limit": f"<= {lim:g}", "met": None if v is None else v <= lim} for t, v, lim in rows]
    b = sv.get("batch") or {}
    r = b.get("ratio_to_raw")
    out.append({"target": "batch scoring into SQLite / raw predict", "value": r, "limit": ">= 0.8", "met": None if r is None else r >= 0.8})
    t = res.get("test_command") or {}
    green = t and not (t["failures"] or t["errors"])
    out.append({"target": "the test command (s)", "value": t.get("seconds") if green else None, "limit": "<= 900",
                "met": None if not green else t["seconds"] <= 900})
    return out


def markdown(res: dict) -> str:
    L = [f"# mlops-nb benchmarks", "", f"{res['when']} on {res['machine']['cpu_count']} cores, {res['machine']['memory_gib']} GiB; "
         f"load average at start {res['load_average_at_start']} (a shared machine: figures vary run to run).", "",
         f"Command: `{res['command']}` ({res['wall_s']:.0f} s).", ""]
    if res.get("targets"):
        L += ["## Targets (issue 18)", "", "| target | measured | limit | met |", "|---|---|---|---|"]
        L += [f"| {t['target']} | {'not measured' if t['value'] is None else t['value']} | {t['limit']} | "
              f"{'not measured' if t['met'] is None else 'met' if t['met'] else 'NOT met'} |" for t in res["targets"]] + [""]
    o = res.get("overhead")
    if o:
        L += ["## Pipeline overhead (bundled data)", "",
              f"`mlops-nb run --force` {o['pipeline_wall_s']} s vs the same phases in one plain Python process {o['plain_wall_s']} s: "
              f"ratio {o['ratio']}x; overhead {o['overhead_per_step_s']} s per step ({o['overhead_per_step_without_notebook_tests_s']} s "
              f"without the notebooks' own test cells; target {o['target_per_step_s']} s). Dominated by: {o['dominated_by']}.", "",
              "| step | stage wall s | plain s | overhead s | outside papermill s | kernel+papermill s | notebook defs+tests s | Run section s |",
              "|---|---|---|---|---|---|---|---|"]
        for k, v in o["per_step"].items():
            L.append(f"| {k} | {v['stage_wall_s']} | {v['plain_s']} | {v['overhead_s']} | {v.get('outside_papermill_s', '')} | "
                     f"{v.get('kernel_and_papermill_s', '')} | {v.get('notebook_definitions_and_tests_s', '')} | {v.get('run_section_s', '')} |")
        L += ["", "Overhead, summed over the steps: " + "; ".join(f"{k} {v} s" for k, v in o["overhead_breakdown_s"].items()) + ".", ""]
        f = o["fixed_costs"]
        L += [f"Fixed costs: Python start {f['python_start_s']} s; `import papermill, nbformat` {f['import_papermill_nbformat_s']} s "
              f"(slowest below it: " + ", ".join(f"{x['module']} {x['cumulative_s']} s" for x in f["slowest_imports_under_papermill"][:3]) + "); "
              f"`import mlops_nb.cli` {f['import_mlops_nb_cli_s']} s; `mlops-nb --help` {f['mlops_nb_help_s']} s; kernel start "
              f"{f['kernel']['start_s']} s, shutdown {f['kernel']['shutdown_s']} s; "
              + (f"HTML: import nbconvert {f['html']['import_nbconvert_s']} s, render {f['html']['render_05_train_s']} s; " if "html" in f else "")
              + f"`dvc repro` with nothing to do {f['dvc']['repro_nothing_to_do_s']} s.", ""]
    if res.get("scale"):
        L += ["## Scale (generated data, 20 columns: 14 numeric, 6 categorical)", ""]
        names = list(next(iter(res["scale"].values()))["stages"])
        L += ["| rows | total s | peak RSS GiB | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for s in res["scale"].values():
            L.append(f"| {s['rows']:,} | {s['wall_s']} | {s['peak_rss_gib']} | " +
                     " | ".join((f"{s['stages'][k]['wall_s']} s / {round((s['stages'][k].get('peak_rss_mib') or 0) / 1024, 2)} GiB"
                                 + ("" if s["stages"][k].get("status") in ("ok", None) else " FAILED")) if k in s["stages"] else "not run"
                                for k in names) + " |")
        for s in res["scale"].values():
            if "targets" in s: L += ["", f"Targets at {s['rows']:,} rows: {json.dumps(s['targets'])}"]
            if s.get("timed_out"): L += ["", f"The {s['rows']:,}-row run was stopped after {s['timeout_s']:.0f} s, in the {s['unfinished_stage']} stage."]
            elif s.get("returncode"): L += ["", f"The {s['rows']:,}-row run failed in {s.get('unfinished_stage')}: {(s.get('tail') or '')[-500:]}"]
            slow = {k: v.get("slowest_cells") for k, v in s["stages"].items() if v.get("slowest_cells") and (v.get("wall_s") or 0) > 30}
            if slow: L += ["", f"Slowest notebook cells of the stages over 30 s at {s['rows']:,} rows: " + "; ".join(
                f"{k}: " + ", ".join(f"{c['s']} s `{c['cell']}`" for c in v) for k, v in slow.items())]
        L.append("")
    sv = res.get("serving")
    if sv and "generated_rest_fast" in sv:
        g, h, b = sv["generated_rest_fast"], sv["generated_rest_health"], sv["batch"]
        L += ["## Serving", "", f"REST, one row per request, generated model (fast path): p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms, "
              f"{g['requests_per_s']} req/s (`GET /health` floor p50 {h['p50_ms']} ms).",
              f"Batch scoring of {b.get('rows', sv['args']['rows']):,} rows: raw predict {b.get('raw_rows_per_s')} rows/s, checked predict "
              f"{b.get('served_predict_rows_per_s')} rows/s, into SQLite {b.get('score_rows_per_s')} rows/s.", ""]
        if sv.get("bundled_rest"): L += [f"Bundled model REST: {json.dumps(sv['bundled_rest'].get('fast_path'))}", ""]
    t = res.get("test_command")
    if t:
        L += ["## The test command", "", f"`bash tasks.sh test`, pytest's session as its JUnit file {t['file']} records it ({t['when']}): "
              f"{t['seconds']} s for {t['tests']} tests, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped "
              "(the install before it not counted).", ""]
    if res.get("stored"):
        L += ["## Phase benchmarks run on their own (stored in benchmarks/results/)", ""]
        L += [f"- {k}: {json.dumps(v)}" for k, v in res["stored"].items()] + [""]
    return "\n".join(L)


def remake_markdown(json_path: Path):
    "Write the Markdown table again from a benchmarks.json (after a change of the table's layout)."
    from mlops_nb.core import write_text
    res = read_json(json_path)
    return write_text(markdown(res), Path(json_path).with_suffix(".md"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 1M-row run; a smaller serving benchmark")
    ap.add_argument("--sizes", default="100000,1000000", help="rows of the scale runs (comma-separated)")
    ap.add_argument("--skip-overhead", action="store_true"); ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--serve-rows", type=int, default=None, help="rows of the batch-scoring benchmark (default 1000000, as issue 18 asks; --quick 50000)")
    ap.add_argument("--requests", type=int, default=None, help="REST requests per measurement (default 2000, --quick 500)")
    ap.add_argument("--profile-minimal", action="store_true", help="scale runs with validate.profile_minimal: true")
    ap.add_argument("--out", default=str(REPO/"reports/benchmarks"))
    ap.add_argument("--test-results", default=str(REPO/"reports/test-results.xml"),
                    help="the JUnit file of the last `bash tasks.sh test`: its time is the test command's figure")
    ap.add_argument("--timeout", type=float, default=1500, help="seconds any one run may take")
    ap.add_argument("--big-timeout", type=float, default=600, help="seconds the 1M-row pipeline may take (twice its 5-minute target); "
                                                                    "past it the run is stopped and the stage it was in reported")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from mlops_nb.core import environment_info, machine_info, now_utc, write_json, write_text
    sizes = [int(s) for s in a.sizes.split(",") if s]
    if a.quick: sizes = [s for s in sizes if s < 1_000_000]
    t0 = time.perf_counter()
    res = {"when": now_utc(), "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine_info(), "environment": environment_info(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
           "note": "2 cores shared with other jobs: timings include their interference"}
    work = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-"))
    try:
        if not a.skip_overhead: res["overhead"] = overhead(work, a.timeout)
        if not a.skip_scale: res["scale"] = {str(n): scale(n, work, a.timeout, a.profile_minimal, a.big_timeout) for n in sizes}
        if not a.skip_serve:
            project = work/"nb" if (work/"nb/models/package/current.json").exists() else REPO
            res["serving"] = serving(work, project, a.serve_rows or (50_000 if a.quick else 1_000_000), a.requests or (500 if a.quick else 2000), a.timeout)
        res["stored"] = stored()
        res["test_command"] = test_command(Path(a.test_results))
        res["targets"] = targets(res)
    finally:
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        res["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        out = Path(a.out)
        try: md = markdown(res)
        except Exception as e: md = f"# mlops-nb benchmarks\n\n(incomplete: {type(e).__name__}: {e}; see benchmarks.json)\n"
        write_json(res, out/"benchmarks.json"); write_text(md, out/"benchmarks.md")
        write_json(res, BENCH/"results/benchmarks.json")
        shutil.rmtree(work, ignore_errors=True)
        print(f"\n{md}\nresults: {out/'benchmarks.json'}, {out/'benchmarks.md'}")


if __name__ == "__main__":
    main()
