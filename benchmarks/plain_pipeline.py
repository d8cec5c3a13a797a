"""The whole pipeline as one plain Python process: each phase's exported functions called in order with the same
parameters `mlops-nb step` would inject, and no papermill, kernel, notebook test cells, HTML rendering or DVC.

    .venv/bin/python benchmarks/plain_pipeline.py [--project DIR] [--out phases.json]

What each phase runs is the code of its notebook's Run section (the cells from `os.chdir(find_root())` on), read from
the notebook and executed in a namespace holding the phase module (`mlops_nb.<phase>`, private names included), the
notebook's import cells and the parameter values from `resolve_step`: so the script cannot drift from the steps it is
compared with. The `report` stage is `report.build_index`. Prints and (with --out) writes the seconds per phase.
Run it in a copy of the project: it writes the same outputs the pipeline does.
"""
import argparse, ast, importlib, json, os, sys, time
from pathlib import Path


def notebook_code(nb_path: Path) -> tuple[list[str], list[str]]:
    "The import-only cells and the Run-section cells of a phase notebook."
    import nbformat
    nb = nbformat.read(str(nb_path), as_version=4)
    imports, run, in_run = [], [], False
    for c in nb.cells:
        if c.cell_type != "code": continue
        src = c.source
        if src.lstrip().startswith("os.chdir(find_root())"): in_run = True
        if in_run: run.append(src); continue
        body = "\n".join(l for l in src.splitlines() if not l.startswith("#|"))
        try: tree = ast.parse(body)
        except SyntaxError: continue
        if tree.body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body): imports.append(body)
    return imports, run


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", help="the project copy to run in (default: the current folder)")
    ap.add_argument("--out", default=None, help="write the phase timings here as JSON")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    root = Path(a.project).resolve()
    os.chdir(root)
    from mlops_nb.core import load_params
    from mlops_nb.report import build_index
    from mlops_nb.step_runner import NOTEBOOKS_DIR, STEPS, resolve_step
    t_imports = time.perf_counter() - t_start
    params = load_params(root/"params.yaml")
    phases = {}
    for step, nb in STEPS.items():
        t0 = time.perf_counter()
        path = root/NOTEBOOKS_DIR/f"{nb}.ipynb"
        imports, run = notebook_code(path)
        module = importlib.import_module(f"mlops_nb.{step}")
        ns = {**vars(module), "__name__": f"plain_{step}", "display": lambda *a, **k: None}
        for src in imports: exec(compile(src, f"{nb}:imports", "exec"), ns)
        t1 = time.perf_counter()
        ns.update(resolve_step(step, params, path))
        for i, src in enumerate(run): exec(compile(src, f"{nb}:run[{i}]", "exec"), ns)
        os.chdir(root)
        phases[step] = {"seconds": round(time.perf_counter() - t1, 3), "setup_s": round(t1 - t0, 3)}
        print(f"{step:<11} {phases[step]['seconds']:7.2f} s  (imports and setup {phases[step]['setup_s']:.2f} s)", flush=True)
    t0 = time.perf_counter(); build_index(root)
    phases["report"] = {"seconds": round(time.perf_counter() - t0, 3), "setup_s": 0.0}
    total = time.perf_counter() - t_start
    out = {"total_s": round(total, 2), "first_imports_s": round(t_imports, 3), "phases": phases}
    print(f"total {total:.1f} s (the first import of mlops_nb {t_imports:.2f} s)")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
