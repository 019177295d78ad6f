import sys, json, time, logging, os
from pathlib import Path
sys.path.insert(0, "/work/wt/recovery/benchmarks")
import numpy as np, pandas as pd
import deepaa_recovery as rec
import torch, archetool
from archetool.analysis import adapter
from scipy.spatial.distance import cdist
torch.set_num_threads(1)
logging.disable(logging.WARNING)
forms = json.loads(sys.argv[1]); ks = [int(k) for k in sys.argv[2].split(",")]; seeds = [int(s) for s in sys.argv[3].split(",")]
n = int(sys.argv[4]); kind = sys.argv[5] if len(sys.argv) > 5 else "warped"
fit_kw = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
for k in ks:
    for seed in seeds:
        data = rec.make_data(k, n, kind, seed)
        frame = pd.DataFrame(data["x"], columns=[f"f{j}" for j in range(24)]); frame["y"] = data["y"]
        for form, opts in forms.items():
            out = f"/tmp/rec/models/{form}_{kind}_{k}_{seed}_{n}"
            t = time.perf_counter()
            m = archetool.fit(frame, side=["y"], k=k, seed=seed, device="cpu", out=out, progress_bar=False, threads=1, model_options=dict(opts), overwrite=True, **fit_kw)
            sec = time.perf_counter() - t
            arch = adapter("deepaa").decode_table(m, m.module.Z.cpu().numpy())[[f"f{j}" for j in range(24)]].to_numpy()
            per = rec.matched(arch, data["vertices"], data["x"])
            spread = np.linalg.norm(data["x"] - data["x"].mean(0), axis=1).mean()
            near = cdist(arch, data["x"]).min(1) / spread
            sm = m.config["summary"]
            print(f"{form:10s} {kind} k={k} s={seed} err={per.mean():.3f} per={np.round(per,2)} near={np.round(near,2)} {sec:.0f}s {json.dumps({a: sm[a] for a in sm if 'val' in a})}", flush=True)
