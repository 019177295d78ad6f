"""MkDocs hooks (mkdocs.yml ``hooks:``): the CLI reference page is generated from the Typer app at build time."""

from __future__ import annotations

import sys
from pathlib import Path

MARKER = "<!-- archetool-cli-reference -->"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's archetool, installed or not


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    from archetool.cli.reference import markdown as cli_markdown

    return markdown.replace(MARKER, cli_markdown(level=2))
