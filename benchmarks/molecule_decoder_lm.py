"""The molecule decoder as a language model of MOSES molecules: how its size and training data move FCD (issue 18).

The deepaa decoder's condition is a function of the simplex point, three numbers for k = 4, so what makes its samples
look like the data (FCD) is mostly how good a language model of molecules it is. This benchmark trains
``archetool.models.sequence_decoder.SequenceDecoder`` alone, with a constant condition (an unconditional language
model; the real decoder also reads the model's decoded features and scores ~0.08 nats lower), on n random MOSES
training molecules (seed 7, archetool's own SELFIES vocabulary and encoding, or ``--alphabet smiles``: canonical
SMILES as atom-level tokens, where a sampled string may be no molecule and validity is reported; 10 % held out), with Adam at the decoder
stage's learning rate, decaying to a tenth, batches of 128; then samples 5,000 molecules at temperatures 0.7 and 1.0
(seed 11) and scores them with the same FCD as ``molecule_generation.py`` (MOSES test and scaffold-test statistics).

``--variants R`` trains on R random SMILES spellings of each molecule (RDKit ``doRandom``, encoded as SELFIES; a
spelling SELFIES cannot encode within the vocabulary or the length falls back to the canonical one), one drawn per
row and step; validation stays on the canonical spelling.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/molecule_decoder_lm.py --molecules 50000 --hidden 256 --epochs 29

Appends one row to ``benchmarks/results/molecule_decoder_lm.jsonl`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402
from molecule_generation import FCD, MOSES_DIR  # noqa: E402


def molecules(moses_dir: Path, n: int) -> list[str]:
    train = pd.read_csv(moses_dir / "train.csv.gz")["SMILES"].tolist()
    return [train[i] for i in np.random.default_rng(7).choice(len(train), n, replace=False)]


def token_rows(smiles: list[str], variants: int):
    """(vocabulary, canonical tokens (n, L), spellings (n, variants, L), fallbacks)."""
    import selfies as sf
    from rdkit import Chem

    from archetool.data.selfies_tokens import SelfiesVocabulary, to_selfies

    canonical = [to_selfies(s)[0] for s in smiles]
    vocabulary = SelfiesVocabulary.build(canonical)
    tokens = vocabulary.encode(canonical)
    spellings = np.repeat(tokens[:, None, :], max(variants, 1), axis=1)
    fallbacks = 0
    for i, s in enumerate(smiles if variants else []):
        mol = Chem.MolFromSmiles(s)
        for a in range(variants):
            try:
                row = vocabulary.encode([sf.encoder(Chem.MolToSmiles(mol, doRandom=True, canonical=False))])[0]
            except (KeyError, sf.EncoderError):
                row = None
            if row is None or not row.any():
                fallbacks += 1
            else:
                spellings[i, a] = row
    return vocabulary, tokens, spellings, fallbacks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", type=int, default=50000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=29)
    ap.add_argument("--variants", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--alphabet", choices=("selfies", "smiles"), default="selfies",
                    help="tokens the language model reads and writes (smiles: canonical SMILES, atom-level tokens)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--moses-dir", type=Path, default=MOSES_DIR)
    ap.add_argument("--save", type=Path, help="write the trained decoder's state_dict here")
    args = ap.parse_args()

    from rdkit import Chem, RDLogger

    from archetool.models.sequence_decoder import SequenceDecoder

    RDLogger.DisableLog("rdApp.*")
    torch.manual_seed(0)
    smiles = molecules(args.moses_dir, args.molecules)
    if args.alphabet == "smiles":
        from archetool.data.smiles_tokens import SmilesVocabulary

        canonical = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]
        vocabulary, fallbacks = SmilesVocabulary.build(canonical), 0
        tokens = spellings = vocabulary.encode(canonical)
    else:
        vocabulary, tokens, spellings, fallbacks = token_rows(smiles, args.variants)
    n_val = len(smiles) // 10
    order = np.random.default_rng(0).permutation(len(smiles))
    val, train = order[:n_val], order[n_val:]
    decoder = SequenceDecoder(vocabulary.size, vocabulary.max_length, 1, hidden_dim=args.hidden,
                              dropout=args.dropout)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    steps = args.epochs * (len(train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.1 ** (step / steps))
    history = []
    for epoch in range(args.epochs):
        tic, rng = time.perf_counter(), np.random.default_rng(epoch)
        perm, total = rng.permutation(train), []
        decoder.train()
        for b in range(len(perm) // args.batch_size):
            rows = perm[b * args.batch_size:(b + 1) * args.batch_size]
            batch = spellings[rows, rng.integers(0, spellings.shape[1], len(rows))] if args.variants else tokens[rows]
            loss = decoder.loss(torch.zeros(len(rows), 1), torch.from_numpy(batch))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            total.append(loss.item())
        decoder.eval()
        with torch.no_grad():
            val_loss = float(np.mean([decoder.loss(torch.zeros(len(c), 1), torch.from_numpy(tokens[c])).item()
                                      for c in np.array_split(val, 10)]))
        history.append({"epoch": epoch + 1, "train": float(np.mean(total)), "val": val_loss, "s": time.perf_counter() - tic})
        print(json.dumps(history[-1]), file=sys.stderr, flush=True)
    if args.save:
        torch.save(decoder.state_dict(), args.save)
    fcd = FCD(args.moses_dir)
    row = {"molecules": args.molecules, "alphabet": args.alphabet, "hidden": args.hidden, "dropout": args.dropout, "epochs": args.epochs, "variants": args.variants,
           "fallbacks": fallbacks, "lr": args.lr, "train s": round(sum(h["s"] for h in history)),
           "best val tokens": round(min(h["val"] for h in history), 4), "last train tokens": round(history[-1]["train"], 4)}
    generator = torch.Generator().manual_seed(11)
    known = {Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles}
    for temperature in (0.6, 0.7, 0.8, 1.0):
        out = decoder.generate(torch.zeros(args.samples * 5 // 4, 1), temperature=temperature, generator=generator,
                               first_allowed=torch.from_numpy(vocabulary.atom_mask()))
        decoded = vocabulary.decode(out.numpy())
        generated = [s for s in decoded if s]
        row[f"valid T{temperature}"] = round(len(generated) / len(decoded), 3)
        generated = generated[:args.samples]  # FCD of the same number of molecules for either alphabet
        scores = fcd(generated)
        row[f"FCD test T{temperature}"] = round(scores["test"], 3)
        row[f"FCD scaffold T{temperature}"] = round(scores["test_scaffolds"], 3)
        row[f"aromatic T{temperature}"] = round(float(np.mean(
            [any(a.GetIsAromatic() for a in Chem.MolFromSmiles(s).GetAtoms()) for s in generated])), 3)
        row[f"unique T{temperature}"] = round(len(set(generated)) / len(generated), 3)
        row[f"novel T{temperature}"] = round(float(np.mean([s not in known for s in set(generated)])), 3)
    print(json.dumps(row))
    with open(RESULTS / "molecule_decoder_lm.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
