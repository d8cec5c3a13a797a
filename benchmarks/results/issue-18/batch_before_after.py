import sys, time, tempfile, os
from pathlib import Path
sys.path.insert(0, sys.argv[2]+"/benchmarks")
from bench_serve import package_generated, generated_data
import mlops_nb.serve as S
print("code:", S.__file__)
w = Path(tempfile.mkdtemp()); s = S.load_model(package_generated(w, 20000))
rows = int(sys.argv[1]); data = generated_data(rows, seed=7).drop(columns="target")
chunks = [data.iloc[i:i+100000] for i in range(0, rows, 100000)]
for rep in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2):
    t=time.perf_counter(); [s.model.predict(c[s.features]) for c in chunks]; raw=time.perf_counter()-t
    f=w/f"a{rep}.db"
    t=time.perf_counter(); n=S.score_chunks(s, chunks, f); ts=time.perf_counter()-t
    t=time.perf_counter(); S.score_chunks(s, chunks, f); again=time.perf_counter()-t
    print(f"{rows} rows: raw predict {raw:.2f} s, score_chunks into SQLite {ts:.2f} s ({raw/ts:.0%} of raw), re-score {again:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
