import sys, json, logging, tempfile, time
sys.path.insert(0, "/work/wt/recovery/benchmarks")
import numpy as np, torch, archetool
logging.disable(logging.WARNING); torch.set_num_threads(1)
forms = json.loads(sys.argv[1]); seeds = range(int(sys.argv[2]))
table = sys.argv[3] if len(sys.argv) > 3 else "wine"
import deepaa_real_tables as real
from pathlib import Path
work = Path(tempfile.mkdtemp())
path, side, x, y = real.table_file(table, work)
for form, o in forms.items():
    r2, ov, t0 = [], [], time.perf_counter()
    for s in seeds:
        fit = dict(o.get("fit", {})); mo = {k: v for k, v in o.items() if k != "fit"}
        m = archetool.fit(str(path), side=[side], k=4, seed=s, device="cpu", out=str(work / f"{form}{s}"), progress_bar=False, threads=1, model_options=mo, **fit)
        w = m.embed(str(path))[[f"a{j}" for j in range(4)]].to_numpy()
        r2.append(m.config["summary"][f"val_r2_{side}"]); ov.append((w.max(1) > 0.999).mean())
    print(f"{table} {form:12s} side R2 mean {np.mean(r2):.3f} ({' '.join(f'{v:.2f}' for v in r2)}) on vertex {100*np.mean(ov):.1f}% {time.perf_counter()-t0:.0f}s", flush=True)
