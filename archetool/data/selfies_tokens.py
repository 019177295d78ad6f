"""SELFIES tokens for the molecule sequence decoder (DESIGN §1.4).

Every sequence of SELFIES symbols decodes to a valid molecule, so a decoder that emits symbols of the
vocabulary cannot produce an invalid molecule. Token ids: 0 = padding, 1 = begin, 2 = end, then the
training molecules' SELFIES symbols in sorted order. A padded array (n, max_length + 1) holds each
molecule's symbols, then the end token, then padding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS = 0, 1, 2
SPECIAL = ("<pad>", "<bos>", "<eos>")
LENGTH_PERCENTILE = 99.5  # the decoder's default max_length: a longer tail costs epoch time, not coverage
SIZE_PERCENTILES = (5, 95)  # the data's size range (heavy atoms) that greedy decodes are held to


def canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse ``smiles`` (or it is empty)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else None


def to_selfies(smiles: str) -> tuple[str | None, str | None]:
    """(SELFIES of the canonical form of ``smiles``, None) or (None, the reason it cannot be encoded)."""
    import selfies as sf

    canonical = canonical_smiles(smiles)
    if canonical is None:
        return None, "RDKit cannot parse the SMILES"
    try:
        return sf.encoder(canonical), None
    except sf.EncoderError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if lines else "encoder error"
        return None, f"SELFIES cannot encode it ({detail}); check charges and valences"


@dataclass
class SelfiesVocabulary:
    """symbols: the SELFIES symbols (token id = 3 + position); max_length: the most symbols in a training molecule;
    heavy_atoms: (lo, hi), the 5th and 95th percentiles of the training molecules' heavy atoms (None: unknown, a
    vocabulary saved before it)."""

    symbols: list[str]
    max_length: int
    heavy_atoms: tuple[int, int] | None = None

    @classmethod
    def build(cls, selfies_strings: list[str], max_length: int | None = None,
              percentile: float = LENGTH_PERCENTILE) -> "SelfiesVocabulary":
        """The symbols of ``selfies_strings``; max_length: ``max_length`` when given, else the ``percentile``-th
        percentile of their lengths in symbols (a length some molecule has: ``method="higher"``)."""
        split = split_all(selfies_strings)
        symbols: set[str] = set().union(*split)
        if max_length is None:
            lengths = [len(tokens) for tokens in split]
            max_length = int(np.percentile(lengths, percentile, method="higher")) if lengths else 1
        sizes = [heavy_atom_count(tokens) for tokens in split]
        heavy = tuple(int(v) for v in np.percentile(sizes, SIZE_PERCENTILES, method="nearest")) if sizes else None
        return cls(sorted(symbols), max(1, int(max_length)), heavy)

    @property
    def size(self) -> int:
        """Number of token ids, special tokens included."""
        return len(SPECIAL) + len(self.symbols)

    @property
    def sequence_length(self) -> int:
        """Columns of a token array: max_length symbols plus the end token."""
        return self.max_length + 1

    def atom_mask(self) -> np.ndarray:
        """(size,) bool: token ids of atom symbols (not branch, ring, dot or special): what may start a molecule."""
        atoms = [not any(key in s for key in ("Branch", "Ring")) and s != "." for s in self.symbols]
        return np.array([False] * len(SPECIAL) + atoms)

    def state(self) -> dict:
        out = {"kind": "selfies", "symbols": list(self.symbols), "max_length": int(self.max_length)}
        if self.heavy_atoms is not None:
            out["heavy_atoms"] = list(self.heavy_atoms)
        return out

    @classmethod
    def from_state(cls, state: dict) -> "SelfiesVocabulary":
        heavy = state.get("heavy_atoms")
        return cls(list(state["symbols"]), int(state["max_length"]), tuple(heavy) if heavy is not None else None)

    def encode(self, selfies_strings: list[str]) -> np.ndarray:
        """SELFIES strings -> int64 token array (n, max_length + 1); symbols not in the vocabulary are an error.

        A molecule of more than max_length symbols is a row of padding only: the decoder's loss ignores
        padding, so it is left out of that loss (never truncated into a different molecule)."""
        index = {s: i + len(SPECIAL) for i, s in enumerate(self.symbols)}
        out = np.full((len(selfies_strings), self.sequence_length), PAD, dtype=np.int64)
        for row, tokens in enumerate(split_all(selfies_strings)):
            if len(tokens) > self.max_length:
                continue
            out[row, : len(tokens)] = [index[t] for t in tokens]
            out[row, len(tokens)] = EOS
        return out

    def to_selfies(self, tokens: np.ndarray) -> list[str]:
        """Token rows (m, L) -> SELFIES strings, each read up to its first end (or padding) token."""
        names = list(SPECIAL) + list(self.symbols)
        out = []
        for row in np.asarray(tokens):
            parts = []
            for t in row.tolist():
                if t in (PAD, EOS):
                    break
                if t >= len(SPECIAL):
                    parts.append(names[t])
            out.append("".join(parts))
        return out

    def decode(self, tokens: np.ndarray) -> list[str | None]:
        """Token rows (m, L) -> RDKit canonical SMILES (None where the sequence is empty)."""
        import selfies as sf

        smiles = []
        for s in self.to_selfies(tokens):
            try:
                smiles.append(canonical_smiles(sf.decoder(s)) if s else None)
            except sf.DecoderError:
                smiles.append(None)
        return smiles


def split_all(selfies_strings: list[str]) -> list[list[str]]:
    """SELFIES strings (n) -> their symbols (n lists)."""
    import selfies as sf

    return [list(sf.split_selfies(s)) for s in selfies_strings]


#: a SELFIES hydrogen atom symbol ([H], [2H], [=H] ...; not [Hg], [He])
_HYDROGEN = re.compile(r"\[[=#/\\]?\d*H(?![a-z])")


def heavy_atom_count(symbols: list[str]) -> int:
    """Heavy atoms of a molecule given as its SELFIES symbols: the atom symbols, leaving out hydrogen ([H], [2H]),
    the dot, the branch and ring symbols and the index symbols that follow them ([Branch2] and [Ring2]: two, ...)."""
    count, skip = 0, 0
    for symbol in symbols:
        if skip:
            skip -= 1
        elif "Branch" in symbol or "Ring" in symbol:
            skip = int(symbol.rstrip("]")[-1])
        elif symbol != "." and not _HYDROGEN.match(symbol):
            count += 1
    return count


def encode_molecules(smiles: list[str]) -> tuple[list[str | None], list[str | None]]:
    """SMILES (n) -> (SELFIES or None (n), reason or None (n)): None marks a molecule that cannot be encoded."""
    pairs = [to_selfies(s) for s in smiles]
    return [p[0] for p in pairs], [p[1] for p in pairs]
