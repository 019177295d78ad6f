"""Token vocabularies of the molecule sequence decoder (DESIGN §1.4): what they share.

Token ids: 0 = padding, 1 = begin, 2 = end, then the training molecules' symbols in sorted order. A padded array
(n, max_length + 1) holds each molecule's symbols, then the end token, then padding. Two alphabets:

- ``smiles`` (:mod:`archetool.data.smiles_tokens`): canonical SMILES as atom-level tokens. A sampled string need
  not be a molecule; generation draws such rows again. The better language model at scale: on 50,000 MOSES
  molecules (same 256-unit GRU, 29 epochs) FCD to MOSES test 0.42 at temperature 1, against 4.05 (best
  temperature) with SELFIES (benchmarks/molecule_decoder_lm.py).
- ``selfies`` (:mod:`archetool.data.selfies_tokens`): every symbol sequence decodes to a valid molecule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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


@dataclass
class TokenVocabulary:
    """symbols: the alphabet's symbols seen in training (token id = 3 + position); max_length: the most symbols a
    molecule may have; heavy_atoms: (lo, hi), the 5th and 95th percentiles of the training molecules' heavy atoms
    (None: unknown, a vocabulary saved before it). Subclasses say how a string splits into symbols, which symbols
    are atoms and how a string becomes a molecule."""

    symbols: list[str]
    max_length: int
    heavy_atoms: tuple[int, int] | None = None

    kind: ClassVar[str] = ""
    #: what one token is called in messages ("SELFIES symbols", "SMILES tokens")
    unit: ClassVar[str] = ""
    #: a sampled string may fail to be a molecule (SMILES); generation then draws it again
    may_be_invalid: ClassVar[bool] = False

    @staticmethod
    def split(string: str) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def is_atom(symbol: str) -> bool:
        """A symbol that may start a molecule."""
        raise NotImplementedError

    @staticmethod
    def heavy_atom_count(symbols: list[str]) -> int:
        raise NotImplementedError

    @staticmethod
    def string_to_smiles(string: str) -> str | None:
        """A symbol string -> RDKit canonical SMILES, or None where it is no molecule."""
        raise NotImplementedError

    @staticmethod
    def encode_molecules(smiles: list[str]) -> tuple[list[str | None], list[str | None]]:
        """SMILES (n) -> (this alphabet's strings, None where a molecule cannot be written (n); reasons (n))."""
        raise NotImplementedError

    @classmethod
    def build(cls, strings: list[str], max_length: int | None = None,
              percentile: float = LENGTH_PERCENTILE) -> "TokenVocabulary":
        """The symbols of ``strings``; max_length: ``max_length`` when given, else the ``percentile``-th percentile
        of their lengths in symbols (a length some molecule has: ``method="higher"``)."""
        split = [cls.split(s) for s in strings]
        symbols: set[str] = set().union(*split)
        if max_length is None:
            lengths = [len(tokens) for tokens in split]
            max_length = int(np.percentile(lengths, percentile, method="higher")) if lengths else 1
        sizes = [cls.heavy_atom_count(tokens) for tokens in split]
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
        """(size,) bool: token ids of atom symbols: what may start a molecule."""
        return np.array([False] * len(SPECIAL) + [self.is_atom(s) for s in self.symbols])

    def state(self) -> dict:
        out = {"kind": self.kind, "symbols": list(self.symbols), "max_length": int(self.max_length)}
        if self.heavy_atoms is not None:
            out["heavy_atoms"] = list(self.heavy_atoms)
        return out

    @classmethod
    def from_state(cls, state: dict) -> "TokenVocabulary":
        heavy = state.get("heavy_atoms")
        return cls(list(state["symbols"]), int(state["max_length"]), tuple(heavy) if heavy is not None else None)

    def encode(self, strings: list[str]) -> np.ndarray:
        """Strings -> int64 token array (n, max_length + 1); symbols not in the vocabulary are an error.

        A molecule of more than max_length symbols is a row of padding only: the decoder's loss ignores
        padding, so it is left out of that loss (never truncated into a different molecule)."""
        index = {s: i + len(SPECIAL) for i, s in enumerate(self.symbols)}
        out = np.full((len(strings), self.sequence_length), PAD, dtype=np.int64)
        for row, string in enumerate(strings):
            tokens = self.split(string)
            if len(tokens) > self.max_length:
                continue
            out[row, : len(tokens)] = [index[t] for t in tokens]
            out[row, len(tokens)] = EOS
        return out

    def to_strings(self, tokens: np.ndarray) -> list[str]:
        """Token rows (m, L) -> symbol strings, each read up to its first end (or padding) token."""
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
        """Token rows (m, L) -> RDKit canonical SMILES (None where the sequence is empty or no molecule)."""
        return [self.string_to_smiles(s) if s else None for s in self.to_strings(tokens)]


ALPHABETS = ("smiles", "selfies")


def vocabulary_class(kind: str) -> type[TokenVocabulary]:
    """The vocabulary class of an alphabet (one of :data:`ALPHABETS`)."""
    from archetool.data.selfies_tokens import SelfiesVocabulary
    from archetool.data.smiles_tokens import SmilesVocabulary

    return {cls.kind: cls for cls in (SelfiesVocabulary, SmilesVocabulary)}[kind]


def vocabulary_from_state(state: dict) -> TokenVocabulary:
    """A saved vocabulary (``prep.sequence``) of either alphabet; one saved without a kind is SELFIES."""
    return vocabulary_class(state.get("kind", "selfies")).from_state(state)
