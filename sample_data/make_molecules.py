"""Make sample_data/molecules.smi: a seeded random subsample of QM9.

Source: the PyPI package ``qm9pack`` (MIT licence), which ships all 130,831
QM9 molecules (Ramakrishnan et al., Sci. Data 1, 140022 (2014),
doi:10.1038/sdata.2014.22) with SMILES and DFT properties computed at the
B3LYP/6-31G(2df,p) level.  Columns used:

    Index                       -> id  ("qm9_%06d", the QM9 molecule index)
    SMILES                      -> smiles (as given, not re-canonicalised)
    Heatcapacity_Cv_cal_mol_K   -> heat_capacity  (Cv, cal/mol/K, 298.15 K)
    HOMO_LUMO_gap_au            -> band_gap       (Hartree)

qm9pack is needed only to run this script; it is never a runtime dependency
of archetool.  Install it with

    .venv/bin/pip install --no-deps qm9pack

Note: ``import qm9pack`` (and so ``qm9pack.get_data``) fails on environments
whose setuptools no longer provides ``pkg_resources`` (setuptools >= 81).
This script therefore locates the installed package with
``importlib.util.find_spec`` (which does not execute the package) and reads
the same three CSV files that ``qm9pack.get_data`` concatenates
(``data/qm9_part{1,2,3}.csv``), in the same order.

Molecules are drawn in a seeded random order; any whose SMILES RDKit cannot
parse would be skipped (none are, with RDKit 2026.09), until N_MOLECULES are
collected.  Rows are written sorted by QM9 index.

Run from the repository root:

    .venv/bin/python sample_data/make_molecules.py
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pandas as pd
from rdkit import Chem, RDLogger

SEED = 20240601
N_MOLECULES = 1000
# the file lives in the package (archetool/examples/, shipped in the wheel); sample_data/molecules.smi links to it
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "archetool", "examples", "molecules.smi")

COLUMNS = {
    "Index": "index",
    "SMILES": "smiles",
    "Heatcapacity_Cv_cal_mol_K": "heat_capacity",
    "HOMO_LUMO_gap_au": "band_gap",
}


def qm9pack_data_dir() -> str:
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("qm9pack is not installed: .venv/bin/pip install --no-deps qm9pack")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def load_qm9() -> pd.DataFrame:
    data_dir = qm9pack_data_dir()
    parts = [
        pd.read_csv(os.path.join(data_dir, f"qm9_part{i}.csv"), usecols=list(COLUMNS))
        for i in (1, 2, 3)
    ]
    df = pd.concat(parts, ignore_index=True).rename(columns=COLUMNS)
    if not df["index"].is_unique:
        raise RuntimeError("QM9 indices are not unique")
    return df


def main() -> None:
    RDLogger.DisableLog("rdApp.*")
    df = load_qm9()
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(df))

    keep, rejected = [], []
    for i in order:
        if Chem.MolFromSmiles(df.at[i, "smiles"]) is None:
            rejected.append(int(df.at[i, "index"]))
            continue
        keep.append(i)
        if len(keep) == N_MOLECULES:
            break

    sub = df.iloc[keep].sort_values("index")
    with open(OUT, "w") as fh:
        fh.write("smiles id heat_capacity band_gap\n")
        for row in sub.itertuples(index=False):
            fh.write(
                f"{row.smiles} qm9_{row.index:06d} "
                f"{row.heat_capacity:.5g} {row.band_gap:.5g}\n"
            )

    print(f"QM9 molecules available: {len(df)}")
    print(f"written: {OUT} ({len(sub)} molecules)")
    print(f"skipped (RDKit could not parse): {len(rejected)} {rejected}")
    for col in ("heat_capacity", "band_gap"):
        print(f"{col}: min {sub[col].min():.5g}  max {sub[col].max():.5g}  "
              f"mean {sub[col].mean():.5g}")


if __name__ == "__main__":
    main()
