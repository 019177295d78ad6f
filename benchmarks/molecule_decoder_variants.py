"""Decoder-stage variants on one fitted main model (issue 18, round 3): a fresh SequenceDecoder with the given
settings trained by the decoder stage alone, then measured on prior samples at temperature 1.0 and 0.7 and two
latent noise scales (0.25 = prior_scale, the old noise; 0.01 = about the posterior sd): validity, uniqueness,
Pearson(pred_logp, RDKit logP), FCD to MOSES test (1,000 samples), near-archetype Spearman and span; greedy
decodes at the archetypes, on the 3-grid and at 300 training latents, with and without the size guard.

Usage (from the repository root; the main model from an earlier fit with --decoder-epochs 0, its train.csv beside
its directory, as written by /tmp-style helper runs; see benchmarks/results/molecule_generation_round3.md):
  python benchmarks/molecule_decoder_variants.py MODELDIR NAME EPOCHS [read=decoded] [word_dropout=0.25]
         [hidden_dim=256] [lr=0.005] [batch=32] [temps=1]
Results are appended to $MOLGEN_WORK/results.jsonl (default /tmp/molgen), decoder weights saved there.
"""
import os, sys, time, json, logging
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "benchmarks")
from molecule_generation import rdkit_props, FCD, MOSES_DIR
import archetool
from archetool.fitting import FitOptions, _train_decoder, training_arrays
from archetool.data.prepare import load_training_data
from archetool.training.loop import TrainConfig
from archetool.training.device import resolve_device
from archetool.training.distributed import init_distributed
from archetool.analysis import adapter
from archetool.analysis.generation import generate_smiles
from scipy.stats import pearsonr, spearmanr
logging.basicConfig(level=logging.WARNING)
WORK = Path(os.environ.get("MOLGEN_WORK", "/tmp/molgen"))
WORK.mkdir(parents=True, exist_ok=True)

mdir, name, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
over, extra = {}, {}
for kv in sys.argv[4:]:
    k, v = kv.split("=")
    v = v if k in ("read",) else (float(v) if "." in v else int(v))
    (extra if k in ("lr", "n", "temps", "fcd", "batch") else over)[k] = v
model = archetool.load(mdir)
model.config["summary"].pop("posterior_sd", None)  # the noise scale is set by ps below
opts = model.config["options"]
tic = time.perf_counter()
data, prep = load_training_data(str(mdir.parent / "train.csv"), side=["logp"], decoder="selfies",
                                featurizer_options=dict(jobs=1, progress=False))
assert prep.sequence["symbols"] == model.prep.sequence["symbols"] and prep.sequence["max_length"] == model.prep.sequence["max_length"], "vocabulary differs"
module = model.module
settings = {k: v for k, v in module.sequence_decoder.settings().items() if k != "condition_dim"}
settings.update(over)
torch.manual_seed(0)
module.attach_sequence_decoder(**settings)
tc = model.config["train"]
config = TrainConfig(epochs=tc["epochs"], batch_size=int(extra.get("batch", tc["batch_size"])), lr=tc["lr"], val_fraction=tc["val_fraction"],
                     patience=tc["patience"], seed=tc["seed"], final_lr_fraction=tc["final_lr_fraction"])
device = resolve_device("cpu"); dist = init_distributed(device)
fo = FitOptions(data="x", decoder_epochs=epochs, decoder_lr=float(extra.get("lr", 2e-3)))
t0 = time.perf_counter()
res = _train_decoder(fo, module, data, config, device, dist)
train_s = time.perf_counter() - t0
module.eval()
out = {"name": name, "settings": over, "extra": extra, "epochs": len(res.history), "best": res.best_epoch,
       "val_tokens": round(float(res.best_val), 4), "train_s": round(train_s, 1),
       "params": sum(p.numel() for p in module.sequence_decoder.parameters())}
an = adapter("deepaa")
n = int(extra.get("n", 1000))
lo, hi = np.nanpercentile(rdkit_props(data.smiles if data.smiles is not None else [])[1], [5, 95])
fcd = FCD(MOSES_DIR) if "nci" not in str(mdir) and extra.get("fcd", 1) else None
torch.save(module.sequence_decoder.state_dict(), WORK / f"dec_{name}.pt")
combos = [(1.0, 0.25), (0.7, 0.25), (1.0, 0.01), (0.7, 0.01)] if extra.get("temps", 2) == 2 else [(1.0, 0.01), (0.7, 0.01)]
for T, ps in combos:
    module.prior_scale = ps
    torch.manual_seed(1)
    s = an.sample(model, n, rows=model.training_rows, temperature=T, molecules="smiles", prior="posterior")
    real, heavy = rdkit_props(s["smiles"].tolist())
    ok = ~np.isnan(real)
    r = {"valid": float(ok.mean()), "unique": len(set(s["smiles"][ok])) / max(1, ok.sum()),
         "pearson": float(pearsonr(s["pred_logp"].to_numpy()[ok], real[ok])[0]), "heavy": float(np.nanmean(heavy))}
    if fcd is not None:
        r["fcd"] = round(fcd(s["smiles"].tolist())["test"], 3)
    means = []
    preds = an.decode_table(model, an.codes(model))["pred_logp"].to_numpy()
    for j in range(4):
        torch.manual_seed(10 + j)
        t = an.sample(model, 100, rows=model.training_rows, temperature=T, molecules="smiles", archetype=f"a{j}")
        means.append(float(np.nanmean(rdkit_props(t["smiles"].tolist())[0])))
    r["arch_spearman"] = float(spearmanr(means, preds).statistic)
    r["span"] = (max(means) - min(means)) / (preds.max() - preds.min())
    out[f"T{T}_ps{ps}"] = {k: round(v, 3) for k, v in r.items()}
codes = an.codes(model)
g = generate_smiles(model, codes, temperature=0.0)
gh = rdkit_props(g)[1]
grid = model.interpolate(grid=3)
_, grh = rdkit_props(grid["smiles"].tolist())
lat = model.training_rows[["z0", "z1", "z2"]].to_numpy(np.float32)[:300]
gl = generate_smiles(model, lat, temperature=0.0)
out.update({"arch_greedy_heavy": gh.tolist(), "arch_distinct": len(set(g)), "range": [lo, hi],
            "grid_distinct": int(grid["smiles"].nunique()), "grid_n": len(grid),
            "grid_in_range": int(((grh >= lo) & (grh <= hi)).sum()), "greedy300_distinct": len(set(gl)),
            "total_s": round(time.perf_counter() - tic, 1), "arch_greedy": g})
if "heavy_atoms" in prep.sequence:
    model.prep.sequence["heavy_atoms"] = prep.sequence["heavy_atoms"]
    g = generate_smiles(model, codes, temperature=0.0)
    grid = model.interpolate(grid=3)
    _, grh = rdkit_props(grid["smiles"].tolist())
    out.update({"guard_arch_heavy": rdkit_props(g)[1].tolist(), "guard_arch_distinct": len(set(g)),
                "guard_grid_distinct": int(grid["smiles"].nunique()), "guard_grid_in_range": int(((grh >= lo) & (grh <= hi)).sum()),
                "guard_arch": g})
print(json.dumps(out))
with open(WORK / "results.jsonl", "a") as f:
    f.write(json.dumps(out) + "\n")
