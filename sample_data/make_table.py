"""Make sample_data/wine.csv from scikit-learn's bundled wine data set.

Source: ``sklearn.datasets.load_wine()`` (bundled in scikit-learn,
BSD-3-Clause; no download), a copy of the UCI Machine Learning Repository
"Wine" data set (Aeberhard & Forina, 1991; CC BY 4.0): 178 Italian wines,
13 chemical measurements, 3 cultivars.

Columns: ``id`` (wine_000 .. wine_177, in the bundled row order), the 13
features with snake_case names, ``cultivar`` (class_0 / class_1 / class_2).
Values are written exactly as bundled.

Run from the repository root:

    .venv/bin/python sample_data/make_table.py
"""

from __future__ import annotations

import os
import re

import pandas as pd
from sklearn.datasets import load_wine

# the file lives in the package (archetool/examples/, shipped in the wheel); sample_data/wine.csv links to it
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "archetool", "examples", "wine.csv")


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def main() -> None:
    wine = load_wine()
    features = pd.DataFrame(wine.data, columns=[snake(n) for n in wine.feature_names])
    df = pd.concat(
        [
            pd.DataFrame({"id": [f"wine_{i:03d}" for i in range(len(features))]}),
            features,
            pd.DataFrame({"cultivar": [str(wine.target_names[t]) for t in wine.target]}),
        ],
        axis=1,
    )
    df.to_csv(OUT, index=False)
    print(f"written: {OUT} ({df.shape[0]} rows x {df.shape[1]} columns)")
    print(list(df.columns))
    print(df["cultivar"].value_counts().to_string())


if __name__ == "__main__":
    main()
