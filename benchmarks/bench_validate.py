"""Validate's parts on generated data (benchmarks/bench_train.generate, 20 columns + target), timed one after the other
with RSS: `python benchmarks/bench_validate.py N [skip-profile]`; the Parquet file is kept in $BENCH_DIR (default /tmp)."""
import sys, time, resource, os
sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent))
import pandas as pd
from pathlib import Path
n = int(sys.argv[1])
data = Path(os.environ.get('BENCH_DIR', '/tmp'))/f'generated_{n}.parquet'
if not data.exists():
    from bench_train import generate
    X, y, _ = generate(n, seed=1); X.assign(target=y).to_parquet(data, index=False); del X, y
from mlops_nb.validate import infer_schema, quality_gates, profile_report, check_schema
from mlops_nb.core import frame_sha256, duplicate_rows
def rss(): return open('/proc/self/status').read().split('VmRSS:')[1].split()[0]
def hwm(): return open('/proc/self/status').read().split('VmHWM:')[1].split()[0]
T = {}
def t(name, f):
    t0 = time.perf_counter(); r = f(); T[name] = round(time.perf_counter() - t0, 2)
    print(name, T[name], 's  rss MiB', int(rss())//1024, 'hwm', int(hwm())//1024, flush=True); return r
raw = t('read', lambda: pd.read_parquet(data))
schema = t('infer_schema', lambda: infer_schema(raw, 'target', 50, drop_missing_above=0.2))
rep = t('duplicate_rows', lambda: duplicate_rows(raw))
gates = t('gates', lambda: quality_gates(raw, 'target', 0.2, 10, 0.5, schema=schema, min_rows=20, cv_folds=5, train_share=0.6, duplicated=rep))
t('sha', lambda: frame_sha256(raw))
t('check_schema', lambda: check_schema(raw, schema))
if len(sys.argv) < 3:
    t('profile', lambda: profile_report(raw, data.with_suffix('.profile.html'), sample_rows=20000))
