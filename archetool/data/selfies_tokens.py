"""SELFIES tokens for the molecule sequence decoder (DESIGN §1.4; ids and layout: :mod:`archetool.data.tokens`).

Every sequence of SELFIES symbols decodes to a valid molecule, so a decoder that emits symbols of the
vocabulary cannot produce an invalid molecule.
"""

from __future__ import annotations

import re


from archetool.data.tokens import (  # noqa: F401  (the ids and constants, imported from here by older code)
    BOS, EOS, LENGTH_PERCENTILE, PAD, SIZE_PERCENTILES, SPECIAL, TokenVocabulary, canonical_smiles)


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


class SelfiesVocabulary(TokenVocabulary):
    """SELFIES symbols (see :class:`archetool.data.tokens.TokenVocabulary`): every symbol sequence is a molecule."""

    kind = "selfies"
    unit = "SELFIES symbols"

    @staticmethod
    def split(string: str) -> list[str]:
        import selfies as sf

        return list(sf.split_selfies(string))

    @staticmethod
    def is_atom(symbol: str) -> bool:
        """Not a branch, ring or dot symbol (a sequence that starts with one decodes to nothing)."""
        return not any(key in symbol for key in ("Branch", "Ring")) and symbol != "."

    @staticmethod
    def heavy_atom_count(symbols: list[str]) -> int:
        return heavy_atom_count(symbols)

    @staticmethod
    def encode_molecules(smiles: list[str]) -> tuple[list[str | None], list[str | None]]:
        return encode_molecules(smiles)

    @staticmethod
    def string_to_smiles(string: str) -> str | None:
        import selfies as sf

        try:
            return canonical_smiles(sf.decoder(string))
        except sf.DecoderError:
            return None


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
