#!/usr/bin/env bash
# mlops-nb tasks. Needs only Python 3.11+, pip and git: everything else goes into .venv.
#   bash tasks.sh run    set up, run the whole pipeline on the bundled data → reports/index.html
#   bash tasks.sh test   set up, then check notebooks and run every test (what CI runs)
#   bash tasks.sh lab    set up, open JupyterLab on the project
#   bash tasks.sh bench  set up, run the benchmark suite → reports/benchmarks/benchmarks.md (--quick: skip 1M rows)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PY" -m venv .venv
  fi
  # Install (again) only when the dependency files changed since the last install.
  stamp=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
  if [ "$(cat .venv/.mlops-nb-installed 2>/dev/null)" != "$stamp" ]; then
    echo "== installing mlops-nb and its pinned dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,mlflow]'   # mlflow: tests/test_tracking.py
    # one-time costs paid here, not inside the first pipeline run: matplotlib's font cache, and bytecode of the
    # libraries the steps import
    .venv/bin/python -c "import matplotlib.pyplot, data_profiling, sklearn.ensemble, papermill" >/dev/null 2>&1 || true
    echo "$stamp" > .venv/.mlops-nb-installed
  fi
  export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1 YDATA_PROFILING_NO_ANALYTICS=True
  # dvclive needs a commit to exist: a fresh `git init` without commits would fail the train step.
  if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
    echo "error: this folder must be a git repository with at least one commit (DVC and the lineage record need it)" >&2
    exit 1
  fi
}

# The browser tests (tests/test_browser.py) drive Debian's Chromium; a fresh CI machine gets it here.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Chromium for the browser tests (apt-get install chromium chromium-driver)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } ||
      echo "warning: could not install Chromium; the browser tests will fail" >&2
  else
    echo "note: the browser tests need Chromium at /usr/bin/chromium and will fail without it;" \
         "install it with: sudo apt-get install -y chromium chromium-driver (Debian)" >&2
  fi
}

# The image test (tests/test_ship.py) builds and runs the image with podman, on a base image made locally with mmdebstrap
# (no registry needed); a fresh CI machine gets them here. Without them the test proves the build context instead.
ensure_podman() {
  command -v podman >/dev/null && command -v mmdebstrap >/dev/null && command -v runc >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing podman, runc and mmdebstrap for the image test (apt-get install podman runc mmdebstrap)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null; } ||
      echo "warning: could not install podman; the image test checks the build context without an engine" >&2
  else
    echo "note: the image test builds and runs the image only with podman (sudo apt-get install -y podman runc" \
         "mmdebstrap, Debian); without it, it checks the build context in a fresh virtualenv instead" >&2
  fi
}

case "${1:-}" in
  run)
    setup
    .venv/bin/mlops-nb run
    ;;
  test)
    setup
    ensure_chromium
    ensure_podman
    .venv/bin/python -m pytest tests -n 2 --dist loadfile -v -p no:cacheprovider --durations=40 \
      --junitxml=reports/test-results.xml   # its time is the figure `tasks.sh bench` reports
    ;;
  lab)
    setup
    .venv/bin/mlops-nb lab
    ;;
  bench)
    setup
    .venv/bin/python benchmarks/run.py "${@:2}"
    ;;
  *)
    echo "usage: bash tasks.sh run|test|lab|bench" >&2
    exit 2
    ;;
esac
