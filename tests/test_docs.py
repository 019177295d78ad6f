"""The generated CLI reference covers every option; the README's links and test command stay true.

The site itself is built by CI with ``mkdocs build --strict`` (broken links and anchors fail there).
"""

from __future__ import annotations

import re

import pytest

from conftest import REPO


def _sections(markdown: str) -> dict[str, str]:
    """The reference's text per command heading ('' for the global options)."""
    parts = re.split(r"^## `archetool ?([a-z]*)`.*$", markdown, flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2])}


def test_every_option_of_every_command_is_in_the_generated_reference():
    from archetool.cli.app import app_commands
    from archetool.cli.reference import click_group, markdown

    group = click_group()
    sections = _sections(markdown())
    assert sorted(n for n in sections if n) == sorted(app_commands())
    for name in [""] + app_commands():
        command = group if name == "" else group.get_command(None, name)
        body = sections[name]
        for param in command.params:
            if param.name == "help":
                continue
            if param.param_type_name == "argument":
                assert f"`{(param.metavar or param.name).upper()}`" in body, (name, param.name)
                continue
            for opt in list(param.opts) + list(param.secondary_opts):
                assert re.search(rf"`{re.escape(opt)}`", body), f"archetool {name}: {opt} missing from the reference"
            if param.help:
                assert " ".join(param.help.split()).replace("|", "\\|") in body, (name, param.name)


def test_reference_reports_defaults_and_bounds():
    from archetool.cli.reference import markdown

    fit = _sections(markdown())["fit"]
    assert re.search(r"^\| `--restarts` \| int ≥ 1 \| `1` \|", fit, flags=re.M), fit
    # --epochs, --batch-size and --patience have no fixed default (they depend on the data): their help says so
    assert re.search(r"^\| `--patience` \| int ≥ 0 \|  \| .*default 15, and 50 for nvae/svqvae", fit, flags=re.M), fit
    assert re.search(r"^\| `--batch-size` \| int ≥ 2 \|  \| .*default 128", fit, flags=re.M), fit
    assert re.search(r"^\| `--epochs` \| int ≥ 1 \|  \| .*default: 100, or fewer for large data", fit, flags=re.M), fit
    assert "| `--descriptors` / `--no-descriptors` | flag | `--descriptors` |" in fit


def test_the_cli_page_is_generated_by_the_build_hook():
    from importlib.util import module_from_spec, spec_from_file_location

    page = (REPO / "docs" / "reference" / "cli.md").read_text()
    config = (REPO / "mkdocs.yml").read_text()
    assert "tools/docs_hooks.py" in config and "reference/cli.md" in config
    spec = spec_from_file_location("docs_hooks", REPO / "tools" / "docs_hooks.py")
    hooks = module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert hooks.MARKER in page
    built = hooks.on_page_markdown(page, None, None, None)
    assert hooks.MARKER not in built and "## `archetool fit`" in built and "`--allow-missing-features`" in built


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "python -m pytest -n 2 tests"
    assert f"```bash\n{command}\n```" in readme
    assert re.search(rf"^{re.escape(command)}$", ci, flags=re.M)


@pytest.mark.parametrize("doc", ["README.md", "CHANGELOG.md"])
def test_relative_links_point_to_files(doc):
    text = (REPO / doc).read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, missing
