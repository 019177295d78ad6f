"""SMILES tokens for the molecule sequence decoder (ids and layout: :mod:`archetool.data.tokens`).

A molecule is its RDKit canonical SMILES, split into atom-level tokens: a bracket atom (``[nH]``, ``[C@@H]``,
``[O-]``) is one token, so are ``Cl`` and ``Br`` and a two-digit ring bond (``%10``); every other character is
one. Unlike SELFIES, a sampled token string need not be a molecule (an unclosed ring, a wrong valence): the
generator draws such rows again, and says how many there were.
"""

from __future__ import annotations

import re

from archetool.data.tokens import TokenVocabulary, canonical_smiles

#: one token: a bracket atom, Br / Cl, a %nn ring bond, else any single character
TOKEN = re.compile(r"\[[^\]]*\]|Br|Cl|%\d\d|.")


class SmilesVocabulary(TokenVocabulary):
    """Atom-level tokens of canonical SMILES (see :class:`archetool.data.tokens.TokenVocabulary`)."""

    kind = "smiles"
    unit = "SMILES tokens"
    may_be_invalid = True

    @staticmethod
    def split(string: str) -> list[str]:
        return TOKEN.findall(string)

    @staticmethod
    def is_atom(symbol: str) -> bool:
        """An atom token (a letter or a bracket atom): what a SMILES string starts with."""
        return symbol[:1].isalpha() or symbol.startswith("[")

    @staticmethod
    def heavy_atom_count(symbols: list[str]) -> int:
        """Atom tokens that are not hydrogen ([H], [2H], [H+]): the heavy atoms of a canonical SMILES."""
        return sum(1 for s in symbols if SmilesVocabulary.is_atom(s) and not re.fullmatch(r"\[\d*H[+-]?\d*\]", s))

    @staticmethod
    def string_to_smiles(string: str) -> str | None:
        return canonical_smiles(string)

    @staticmethod
    def encode_molecules(smiles: list[str]) -> tuple[list[str | None], list[str | None]]:
        return encode_molecules(smiles)


def encode_molecules(smiles: list[str]) -> tuple[list[str | None], list[str | None]]:
    """SMILES (n) -> (canonical SMILES or None (n), reason or None (n)): None marks a molecule RDKit cannot parse."""
    canonical = [canonical_smiles(s) for s in smiles]
    return canonical, [None if c is not None else "RDKit cannot parse the SMILES" for c in canonical]
