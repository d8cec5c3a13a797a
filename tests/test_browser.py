"""The HTML reports and JupyterLab in a real browser: headless Chromium (Debian's `chromium` package) driven by Playwright.

Every page the pipeline wrote under reports/ opens with no console error, no failed request, no request that
leaves the machine, and no broken link (every href/src is an existing file inside reports/ or an anchor that
exists); a copy of reports/ moved elsewhere still works; a failed step's page and the failed run's index point at
the failing cell; and JupyterLab, started for real on 127.0.0.1, runs a phase notebook through its menus with no
error output. `bash tasks.sh test` installs Chromium when it is missing.
"""
import json, os, shutil, subprocess, time, urllib.error, urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import free_port, run, tool

CHROMIUM = os.environ.get("MLOPS_NB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

LINKS_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('[href], [src]')) {
    for (const attr of ['href', 'src']) {
      const v = el.getAttribute(attr);
      if (v !== null) out.push({tag: el.tagName.toLowerCase(), attr, value: v});
    }
  }
  return {links: out, ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.getAttribute('name'))};
}"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`; `bash tasks.sh test` does it as root)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, path: Path):
    "Open `path` in a fresh page; return (page, problems, the ids on it, its links)."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:", "about:")) else problems.append(f"network request: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(200)           # scripts that run after load (ydata-profiling's) get to report errors
    found = page.evaluate(LINKS_JS)
    return page, problems, set(found["ids"]), found["links"]


def check_site(browser, top: Path, only=None) -> dict:
    "Open every page under `top` (or the pages `only` names); fail on any problem or broken link. Returns {page: ids}."
    pages = [top/p for p in only] if only else sorted(top.rglob("*.html"))
    assert pages, f"no HTML pages under {top}"
    ids, links, problems = {}, [], []
    for p in pages:
        page, probs, page_ids, page_links = open_page(browser, p)
        page.close()
        ids[p.resolve()] = page_ids
        problems += [f"{p.relative_to(top)}: {x}" for x in probs]
        links += [(p, l) for l in page_links]
    for p, l in links:
        v = l["value"].strip()
        if v in ("", "#") or v.startswith(("data:", "javascript:", "mailto:", "about:")):
            continue
        parts = urlsplit(v)
        if parts.scheme in ("http", "https") or v.startswith("//"):
            # a reference to another site may only be a link to click, never something the page loads
            if not (l["tag"] == "a" and l["attr"] == "href"):
                problems.append(f"{p.relative_to(top)}: loads {v} from the network")
            continue
        if parts.scheme:
            problems.append(f"{p.relative_to(top)}: unexpected link {v}"); continue
        target = (p.parent/unquote(parts.path)).resolve() if parts.path else p.resolve()
        if not target.exists():
            problems.append(f"{p.relative_to(top)}: broken link {v}"); continue
        if not target.is_relative_to(top.resolve()):
            problems.append(f"{p.relative_to(top)}: link {v} leaves {top.name}/"); continue
        if parts.fragment and target in ids and unquote(parts.fragment) not in ids[target]:
            problems.append(f"{p.relative_to(top)}: anchor #{parts.fragment} not found in {target.name}")
    assert not problems, "\n".join(problems[:40])
    return ids


def test_every_report_page_opens_cleanly_and_its_links_resolve(browser, project, tmp_path):
    reports = project/"reports"
    ids = check_site(browser, reports)
    names = {p.name for p in ids}
    steps = ["01_ingest", "02_validate", "03_wrangle", "04_split", "05_train", "06_evaluate", "07_acceptance",
             "08_package", "09_serve", "10_monitor"]
    assert {"index.html", "experiments.html", "profile.html", "drift.html", "drift_profile.html", "model_card.html"} <= names
    assert {f"{s}.html" for s in steps} <= names
    page, _, _, links = open_page(browser, reports/"index.html")
    hrefs = {l["value"] for l in links}
    assert {f"steps/{s}.html" for s in steps} <= hrefs
    assert {"profile.html", "drift.html", "drift_profile.html", "model/model_card.html", "experiments.html"} <= hrefs
    text = page.inner_text("body")
    assert "Run complete" in text and "Lineage" in text and "95% bootstrap intervals" in text and "passed" in text
    assert page.locator("img").count() >= 3 and all(page.locator("img").nth(i).evaluate("i => i.naturalWidth > 0")
                                                    for i in range(page.locator("img").count()))
    shot = tmp_path/"index.png"     # not inside the shared project: other tests compare its outputs byte for byte
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    print(f"\nscreenshot of index.html: {shot}")
    assert shot.stat().st_size > 50_000


def test_step_pages_collapse_code_and_keep_outputs(browser, project):
    page, problems, _, _ = open_page(browser, project/"reports/steps/05_train.html")
    assert not problems
    closed = page.locator("details.mlops-code:not([open])")
    assert closed.count() > 5
    code = closed.first.element_handle(); area = code.query_selector(".jp-InputArea")
    assert not area.is_visible()                 # code hidden until opened
    code.query_selector("summary").click()
    assert area.is_visible()
    assert page.locator(".jp-OutputArea-output").first.is_visible() and "ok" in page.inner_text(".mlops-banner")
    page.close()


def test_reports_work_from_a_copy_moved_elsewhere(browser, project, tmp_path):
    moved = tmp_path/"somewhere"/"else"/"run-reports"
    shutil.copytree(project/"reports", moved)
    check_site(browser, moved)


def _failed_copy(project: Path, dest: Path) -> Path:
    "A copy of the project (without git and DVC) where acceptance failed: its notebook carries the error output."
    import nbformat
    shutil.copytree(project, dest, ignore=lambda d, names: [n for n in names if n in (".git", ".dvc")] if d == str(project) else [])
    nb_path = dest/"reports/steps/07_acceptance.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].outputs = [nbformat.v4.new_output("error", ename="AcceptanceError", evalue="model rejected; the champion stays in place",
                                               traceback=["AcceptanceError: model rejected"])]
    for c in code[-1:]: c.execution_count = 99
    nbformat.write(nb, nb_path)
    status = json.loads((dest/"reports/steps/acceptance.json").read_text())
    status.update(status="failed", error="AcceptanceError: model rejected; the champion stays in place")
    (dest/"reports/steps/acceptance.json").write_text(json.dumps(status))
    return nb_path


def test_a_failed_run_points_at_the_failing_cell(browser, project, tmp_path):
    from mlops_nb.report import build_index
    from mlops_nb.report_pages import render_html
    dest = tmp_path/"failed"
    nb_path = _failed_copy(project, dest)
    render_html(nb_path, nb_path.with_suffix(".html"))
    build_index(dest)
    check_site(browser, dest/"reports", only=["index.html", "steps/07_acceptance.html"])
    page, _, _, _ = open_page(browser, dest/"reports/index.html")
    alert = page.locator(".banner.failed")
    assert "FAILED at step acceptance" in alert.inner_text()
    alert.get_by_text("Open the executed notebook at the failing cell").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("steps/07_acceptance.html#failed-cell")
    marker = page.locator("#failed-cell")
    assert marker.is_visible() and "failed in this cell" in marker.inner_text()
    assert marker.evaluate("e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight }")   # scrolled to it
    assert "AcceptanceError" in page.inner_text(".mlops-banner.failed")
    page.close()


# ---- JupyterLab -----------------------------------------------------------------------------------------

@pytest.fixture
def lab(project, tmp_path):
    "JupyterLab started for real on 127.0.0.1 over a copy of the finished project; yields (url, token, root)."
    root = tmp_path/"labproject"
    shutil.copytree(project, root)
    port, token = free_port(), "mlops-nb-browser-test"
    settings = tmp_path/"lab-settings"/"@jupyterlab"/"notebook-extension"
    settings.mkdir(parents=True)
    (settings/"tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))   # every cell in the DOM
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path/"lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path/"lab-ws"),
           "JUPYTER_CONFIG_DIR": str(tmp_path/"jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp_path/"jupyter-runtime"), "YDATA_PROFILING_NO_ANALYTICS": "True", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen([tool("jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
                             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path/"lab.log", "w"), env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2): break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"JupyterLab did not start:\n{(tmp_path/'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token, root
    finally:
        proc.terminate()
        try: proc.wait(timeout=15)
        except subprocess.TimeoutExpired: proc.kill()


def test_jupyterlab_runs_a_phase_notebook_through_the_ui(browser, lab):
    import nbformat
    url, token, root = lab
    nb_path = root/"notebooks/04_split.ipynb"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/tree/notebooks/04_split.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)   # the kernel started
    page.wait_for_function("() => /python/i.test(document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName')?.textContent || '')",
                           timeout=60_000)
    n_code = page.locator(".jp-NotebookPanel .jp-CodeCell").count()
    assert n_code == sum(c.cell_type == "code" for c in nbformat.read(nb_path, as_version=4).cells)
    # the menu bar: Run -> Run All Cells. A request made while the kernel's connection is still settling can be
    # dropped without a word on a busy machine (no cell shows [*]): then choose it again, up to three times.
    started = "() => Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')).some(p => /\\*|\\d/.test(p.textContent))"
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=20_000, polling=250); break
        except Exception:
            if attempt == 2: raise
            print(f"\nRun All Cells, attempt {attempt + 1}: no cell started; choosing it again")
    # done when no cell waits or runs ([*]) and the last code cell has its number, or an error stopped the run
    try: page.wait_for_function("""() => {
        const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')).map(p => p.textContent);
        const errors = document.querySelectorAll('.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.stderr"] .ansi-red-fg, .jp-NotebookPanel .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
        const running = prompts.some(p => p.includes('*'));
        return !running && (/\\[\\d+\\]/.test(prompts[prompts.length - 1]) || errors.length > 0);
    }""", timeout=150_000, polling=500)
    except Exception:
        page.screenshot(path=str(root/"lab-timeout.png"), full_page=True)
        raise AssertionError(f"the notebook did not finish: prompts {page.locator('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt').all_inner_texts()}, "
                             f"screenshot {root/'lab-timeout.png'}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30_000)
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert all(p.strip().startswith("[") and p.strip()[1:-2].isdigit() for p in prompts), prompts      # every cell ran
    # save through the UI, then read what JupyterLab wrote: no cell has an error output
    page.locator(".lm-MenuBar-itemLabel", has_text="File").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Save Notebook").first.click()
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel-toolbar .jp-mod-dirty, .lm-TabBar-tab.jp-mod-dirty')", timeout=30_000)
    saved = nbformat.read(nb_path, as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert (root/"data/processed/train.parquet").exists()
    page.close()


# ---- experiments ----------------------------------------------------------------------------------------

def test_experiments_page_lists_a_dvc_experiment_side_by_side(browser, project, tmp_path):
    "One real `dvc exp run` in a copy of the finished project: its page shows it next to the baseline, parameters and metrics."
    import re
    root = tmp_path/"expproject"
    shutil.copytree(project, root)
    out = run([tool("dvc"), "exp", "run", "-S", "train.search_iter=2"], root, timeout=900).stdout
    name = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)
    check_site(browser, root/"reports", only=["experiments.html", "index.html"])
    page, _, _, _ = open_page(browser, root/"reports/experiments.html")
    table = page.locator("#experiments")
    head = table.locator("tr").first.locator("th").all_inner_texts()
    rows = {r[0]: dict(zip(head, r)) for r in (row.locator("td").all_inner_texts() for row in table.locator("tr").all()[1:])}
    assert "train.search_iter" in head and "evaluate.test.balanced_accuracy" in head
    assert rows[name]["kind"] == "experiment" and rows[name]["train.search_iter"] == "2"
    baseline = [r for r in rows.values() if r["kind"] == "baseline"]
    assert baseline and baseline[0]["train.search_iter"] == "6"
    assert re.fullmatch(r"[\d.]+ \([\d.]+ to [\d.]+\)", rows[name]["evaluate.test.balanced_accuracy"])   # value and its interval
    page.close()
