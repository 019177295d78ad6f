"""The command-line reference as Markdown, generated from the Typer app (the docs' ``reference/cli.md``).

Nothing here is written by hand, so the reference cannot drift from the commands: every argument and
option of every command, with its help text, type and default, comes from the click objects Typer builds.
"""

from __future__ import annotations


def click_group():
    """The click group behind ``archetool`` (what ``typer.main.get_command`` builds from the app)."""
    import typer

    from archetool.cli.app import app

    return typer.main.get_command(app)


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _names(param) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`"
    names = list(param.opts) + list(param.secondary_opts)
    return " / ".join(f"`{n}`" for n in names)


def _kind(param, ctx) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    kind = param.display_type(ctx) if callable(getattr(param, "display_type", None)) else param.type.name
    bounds = [f"≥ {param.min}" if getattr(param, "min", None) is not None else "",
              f"≤ {param.max}" if getattr(param, "max", None) is not None else ""]
    return _cell(" ".join([kind.strip("<>").replace(" range", "")] + [b for b in bounds if b]))


def _default(param) -> str:
    if param.param_type_name == "argument":
        return "required" if param.required else ""
    if param.required:
        return "required"
    default = param.default
    if default is None or default == () or default == []:
        return ""
    if getattr(param, "secondary_opts", None) and isinstance(default, bool):  # --descriptors/--no-descriptors
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if isinstance(default, bool):
        return "on" if default else ""
    return f"`{default}`"


def command_markdown(name: str, command, level: int = 2) -> str:
    """One command's section: heading, description, usage line and a table of its parameters."""
    from archetool.cli.app import _click

    ctx = _click().Context(command, info_name=f"archetool {name}" if name else "archetool")
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"{'#' * level} `archetool{' ' + name if name else ''}`", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    lines += ["```text", f"archetool{' ' + name if name else ''} {usage}".rstrip(), "```", ""]
    params = [p for p in command.params if p.name != "help"]
    if params:
        lines += ["| argument / option | type | default | meaning |", "| --- | --- | --- | --- |"]
        for p in params:
            lines.append(f"| {_names(p)} | {_kind(p, ctx)} | {_default(p)} | {_cell(getattr(p, 'help', '') or '')} |")
        lines.append("")
    return "\n".join(lines)


def markdown(level: int = 2) -> str:
    """The whole reference: the global options, then every command in the order ``archetool --help`` lists them."""
    group = click_group()
    parts = [command_markdown("", group, level)]
    parts[0] = parts[0].replace("`archetool`", "`archetool` (global options, before the command)", 1)
    for name in group.list_commands(None):
        parts.append(command_markdown(name, group.get_command(None, name), level))
    return "\n".join(parts)
