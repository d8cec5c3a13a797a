"""Run one pipeline stage's command and record its wall time and peak RSS: `step_wrap.py OUT_DIR NAME CMD...`.

benchmarks/run.py puts this in front of every `cmd:` of dvc.yaml in a benchmark copy of the project, so that
`mlops-nb run` (DVC) runs each stage as usual and each stage leaves OUT_DIR/NAME.json behind. The peak RSS is that
of the largest single process the stage ran (`mlops-nb step` or its kernel), read from RUSAGE_CHILDREN once it ended.
"""
import json, os, resource, subprocess, sys, time

out_dir, name, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.perf_counter()
rc = subprocess.call(cmd)
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
    json.dump({"stage": name, "returncode": rc, "wall_s": round(wall, 3), "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
               "cpu_user_s": round(ru.ru_utime, 2), "cpu_sys_s": round(ru.ru_stime, 2)}, f)
sys.exit(rc)
