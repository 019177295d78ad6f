"""Where the time of a molecule fit goes (issue 18, item 4): featurisation, SELFIES encoding, the main model's
training step, the sequence decoder's share of it, padding, validation.

CPU seconds (``time.thread_time`` in this process, ``RUSAGE_CHILDREN`` for the featurisation workers) with
torch on one thread, so the figures mean the same on a machine shared with other jobs; wall seconds are
printed beside them. Per step: the mean of ``--steps`` training steps (forward, backward, fused Adam) of deepaa
with the default settings, batch 128, on random batches of the data, for

* main: the batch without tokens (what a fit with ``--decoder none`` costs);
* decoder, full padding: every batch padded to the data's longest molecule (the columns the token array holds);
* decoder, truncated: columns past the batch's own longest molecule dropped (the code since issue 11);
* decoder, buckets: batches drawn from runs of molecules of similar length (archetool.training.loop's bucketing);

and a validation pass over 10 % of the rows.

Run from the repository root:  nice -n 10 python benchmarks/molecule_fit_profile.py DATA.smi --side logp [...]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine  # noqa: E402


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn):
    """(result, cpu seconds in this thread, wall seconds)."""
    c, w = time.thread_time(), time.perf_counter()
    out = fn()
    return out, time.thread_time() - c, time.perf_counter() - w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--side", default="logp")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from archetool.analysis import adapter
    from archetool.data.prepare import load_training_data
    from archetool.data.selfies_tokens import SelfiesVocabulary, encode_molecules, split_all
    from archetool.fitting import FitOptions
    from archetool.models import build_model
    from archetool.training.loop import bucketed_batches, evaluate

    rows = []
    # featurisation (workers) and SELFIES encoding: load_training_data with and without the decoder
    child0, wall0 = cpu_children(), time.perf_counter()
    os.environ["ARCHETOOL_CACHE_DIR"] = "off"  # featurise for real
    options = {"progress": False, "jobs": 1}  # in this process: its CPU time is measurable
    (_, _), cpu_feat, _ = timed(lambda: load_training_data(args.data, side=[args.side], decoder="none",
                                                           featurizer_options=options))
    wall_feat, cpu_feat = time.perf_counter() - wall0, cpu_feat + cpu_children() - child0
    rows.append(("read + featurisation (RDKit fingerprints + fast descriptors, 1 process)", cpu_feat, wall_feat))
    (data, prep), _, _ = timed(lambda: load_training_data(args.data, side=[args.side], decoder="selfies",
                                                          featurizer_options=options))
    smiles = list(data.smiles)
    (selfies, _), cpu_enc, wall_enc = timed(lambda: encode_molecules(smiles))
    rows.append(("SELFIES encoding (RDKit canonical + selfies)", cpu_enc, wall_enc))
    _, cpu_voc, wall_voc = timed(lambda: SelfiesVocabulary.build(selfies).encode(selfies))
    rows.append(("SELFIES vocabulary + token array", cpu_voc, wall_voc))
    lengths = np.array([len(t) for t in split_all(selfies)])
    full = SelfiesVocabulary.build(selfies, max_length=int(lengths.max()))
    tokens_full = full.encode(selfies)

    options = FitOptions(data=args.data, side=[args.side])
    ad = adapter("deepaa")
    hp = ad.hparams(options, prep, data)
    hp["sequence_decoder"] = {"vocab_size": full.size, "max_length": full.max_length, **ad.decoder_defaults}
    torch.manual_seed(0)
    module = build_model("deepaa", **hp)
    from archetool.training.loop import TrainConfig, make_adam

    for name, kw in (("Adam step, per-parameter loop (before issue 18)", {}), ("Adam step, fused (the loop's make_adam)", None)):
        opt = torch.optim.Adam(module.parameters(), lr=1e-3) if kw is not None else make_adam(module, TrainConfig())
        for p in module.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        _, cpu_opt, wall_opt = timed(lambda: [opt.step() for _ in range(10)])
        rows.append((name, cpu_opt / 10, wall_opt / 10))
    x = torch.from_numpy(data.x)
    side = torch.from_numpy(data.side.astype(np.float32))
    tok = torch.from_numpy(tokens_full)
    n, bs = len(x), args.batch_size
    rng = np.random.default_rng(0)

    def step(idx, with_tokens, truncate):
        batch = {"x": x[idx], "side": side[idx]}
        if with_tokens:
            batch["tokens"] = tok[idx]
        if not truncate:
            module.sequence_decoder.loss = _full_width(module.sequence_decoder)
        try:
            terms = module.loss_terms(batch)
        finally:
            module.sequence_decoder.__dict__.pop("loss", None)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()

    def per_step(kind):
        if kind == "buckets":
            batches = [torch.as_tensor(b) for b in bucketed_batches(torch.randperm(n), lengths, bs)][: args.steps]
        else:
            batches = [torch.as_tensor(rng.choice(n, bs, replace=False)) for _ in range(args.steps)]
        cols = []
        c, w = time.thread_time(), time.perf_counter()
        for b in batches:
            step(b, kind != "main", kind != "full")
            cols.append(tok.shape[1] if kind == "full" else int(lengths[b.numpy()].max()) + 1)
        return (time.thread_time() - c) / len(batches), (time.perf_counter() - w) / len(batches), float(np.mean(cols))

    step(torch.arange(bs), True, True)  # warm-up
    steps = {}
    for kind, name in (("main", "main model only (--decoder none)"), ("full", "with decoder, padded to the longest molecule"),
                       ("trunc", "with decoder, batch's own longest (random batches)"),
                       ("buckets", "with decoder, length buckets")):
        steps[kind] = per_step(kind)
        rows.append((f"training step: {name}", *steps[kind][:2]))
    val = {"x": x[: n // 10], "side": side[: n // 10], "tokens": tok[: n // 10]}
    _, cpu_val, wall_val = timed(lambda: evaluate(module, val, 256))
    rows.append((f"validation pass ({n // 10} rows)", cpu_val, wall_val))

    epoch_steps = int(0.9 * n) // bs
    print(f"## Molecule fit profile: {args.data} ({n} molecules)\n")
    print(f"Command: `nice -n 10 python benchmarks/molecule_fit_profile.py {args.data} --side {args.side}`  ")
    print(f"Machine: {machine()}; load before: {load_average()}; torch on 1 thread.  ")
    print(f"SELFIES symbols per molecule: median {np.median(lengths):.0f}, 99.5th percentile "
          f"{np.percentile(lengths, 99.5, method='higher'):.0f}, max {lengths.max()}; columns per batch: "
          f"full {steps['full'][2]:.0f}, truncated {steps['trunc'][2]:.0f}, buckets {steps['buckets'][2]:.0f}\n")
    print("| stage | CPU s | wall s | per epoch (CPU s, est.) |\n|---|---|---|---|")
    for name, cpu, wall in rows:
        per_epoch = cpu * epoch_steps if name.startswith(("training step", "Adam")) else ""
        print(f"| {name} | {cpu:.4g} | {wall:.4g} | {per_epoch if per_epoch == '' else f'{per_epoch:.1f}'} |")
    main_s = steps["main"][0]
    print(f"\nDecoder cost per step (truncated / main): {steps['trunc'][0] / main_s:.2f}x; "
          f"full padding / main: {steps['full'][0] / main_s:.2f}x; buckets / main: {steps['buckets'][0] / main_s:.2f}x")


def _full_width(decoder):
    """The decoder's loss without per-batch truncation: every batch as wide as the token array."""
    import torch.nn.functional as F

    def loss(condition, tokens):
        logits = decoder.logits(condition, tokens)
        return F.cross_entropy(logits.reshape(-1, decoder.vocab_size), tokens.reshape(-1), ignore_index=0)
    return loss


if __name__ == "__main__":
    main()
