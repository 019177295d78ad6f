"""Two probes of svqvae's held-out accuracy on a class table (issue 17, round 7).

``--probe prior``: fit svqvae per split seed (defaults), then score the test rows with class priors added to the
nearest-code rule, softmax(-d^2 / T + lam * log pi) (pi: the training rows' class frequencies), for lam in
0, 0.25, 0.5, 1, and for the lam whose validation-row log loss is lowest; logistic regression on the same split.

``--probe select-ce``: svqvae fitted with early stopping and the kept epoch chosen on the validation
cross-entropy term alone instead of the whole validation loss (the training loop's ``selection_score``
replaced for svqvae), scored by ``class_models_real.py`` (its table goes to results/NAME.md).

Usage (repository root):
  python benchmarks/svqvae_decision_probes.py --probe prior --dataset pbmc --seeds 13,14,...,22
  python benchmarks/svqvae_decision_probes.py --probe select-ce --dataset pbmc --seeds 13,...,22 --name NAME
Figures: benchmarks/results/class_models_svqvae_round7_grid.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import class_models_real as bench  # noqa: E402

LAMS = (0.0, 0.25, 0.5, 1.0)


def prior_probe(dataset: str, seeds: list[int]) -> pd.DataFrame:
    import archetool
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

    x, y, genes = bench.DATASETS[dataset]()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            train, test = bench.split(y, seed)
            model = archetool.fit(bench.training_frame(x, y, genes, train), model="svqvae", label="class_label", out=f"{tmp}/m{seed}", seed=seed,
                                  device="cpu", progress_bar=False)
            classes = np.asarray(model.prep.classes)
            temperature = model.module.temperature or 1.0
            val = (model.training_rows["split"] == "val").to_numpy()
            log_prior = np.log([(y[train][~val] == c).mean() for c in classes])

            def probs(index, lam):
                d2 = model.transform(model.prep.scale_x(x[index]))["distances"].astype(np.float64) ** 2
                z = -d2 / temperature + lam * log_prior
                p = np.exp(z - z.max(1, keepdims=True))
                return p / p.sum(1, keepdims=True)

            rec = {"seed": seed}
            val_loss = {lam: log_loss(y[train][val], np.clip(probs(train[val], lam), 1e-7, None), labels=list(classes))
                        for lam in LAMS}
            for lam in LAMS:
                pred = classes[probs(test, lam).argmax(1)]
                rec[f"accuracy lam={lam}"] = accuracy_score(y[test], pred)
                rec[f"balanced lam={lam}"] = balanced_accuracy_score(y[test], pred)
            chosen = min(val_loss, key=val_loss.get)
            rec.update({"chosen lam": chosen, "accuracy chosen": rec[f"accuracy lam={chosen}"],
                        "balanced chosen": rec[f"balanced lam={chosen}"]})
            lr = bench.logistic(x, y, train, test, seed)
            rec.update({"logistic accuracy": lr["accuracy"], "logistic balanced": lr["balanced_accuracy"]})
            print(rec, file=sys.stderr, flush=True)
            rows.append(rec)
    return pd.DataFrame(rows)


def select_ce(dataset: str, seeds: list[int], name: str) -> None:
    import archetool.training.loop as loop

    plain = loop.selection_score

    def on_cross_entropy(terms, module, reference):
        if type(module).__name__ == "SVQVAE" and "ce" in terms:
            return terms["ce"]
        return plain(terms, module, reference)

    loop.selection_score = on_cross_entropy
    bench.main(["--datasets", dataset, "--models", "svqvae", "--seeds", ",".join(map(str, seeds)), "--name", name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", choices=("prior", "select-ce"), required=True)
    parser.add_argument("--dataset", default="pbmc", choices=sorted(bench.DATASETS))
    parser.add_argument("--seeds", default="13,14,15,16,17,18,19,20,21,22")
    parser.add_argument("--name", default="svqvae_select_ce")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.probe == "prior":
        table = prior_probe(args.dataset, seeds)
        print(table.mean().round(3).to_string())
    else:
        select_ce(args.dataset, seeds, args.name)


if __name__ == "__main__":
    main()
