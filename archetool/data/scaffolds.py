"""Bemis-Murcko scaffolds of molecules, as group ids for a scaffold split (``fit --split scaffold``)."""

from __future__ import annotations

import numpy as np


def murcko_scaffold(smiles: str) -> str:
    """The canonical Bemis-Murcko scaffold SMILES of a molecule ('' for acyclic molecules and unparsable SMILES)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_groups(smiles) -> tuple[np.ndarray, list[str]]:
    """(groups (n,) int64, scaffolds): ``groups[i]`` indexes the scaffold of molecule i in ``scaffolds``.

    Acyclic molecules share the empty scaffold '' (one group), as in chemprop.
    """
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    names = [murcko_scaffold(str(s)) for s in smiles]
    scaffolds, groups = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    return groups.astype(np.int64), [str(s) for s in scaffolds]
