"""``archetool`` commands (DESIGN §5). Heavy libraries are imported inside the commands only."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from archetool.errors import ArchetoolError


def _click():
    """The click that typer runs on (vendored as ``typer._click`` in recent typer, else the click package)."""
    import typer.core

    return getattr(typer.core, "_click", None) or getattr(typer.core, "click")


def _bad_value(err) -> str:
    """What is wrong with a bad option value: "'x' is not a valid integer", "must be at least 1, got '0'"."""
    cause = err.__cause__
    details = cause.errors() if hasattr(cause, "errors") and callable(cause.errors) else None
    if details:  # typer >= 0.2x validates with pydantic; its messages do not name the value
        detail = details[0]
        value, limits = detail.get("input"), detail.get("ctx") or {}
        kinds = {"int_parsing": "is not a valid integer", "float_parsing": "is not a valid number",
                 "bool_parsing": "is not a valid true/false value"}
        if detail.get("type") in kinds:
            return f"{value!r} {kinds[detail['type']]}"
        bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
                  "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
        if detail.get("type") in bounds:
            words, key = bounds[detail["type"]]
            return f"must be {words} {limits.get(key)}, got {value!r}"
        return f"{value!r}: {str(detail.get('msg', err.message)).rstrip('.')}"
    return err.message.rstrip(".")


def usage_error_line(err, args=None) -> str:
    """A click usage error as one plain line, like archetool's own: ``error: --epochs: 'x' is not a valid
    integer (see 'archetool fit --help')``. ``args``: the command line, for errors that carry no context."""
    import difflib

    click = _click()
    path = err.ctx.command_path if getattr(err, "ctx", None) is not None else "archetool"
    if getattr(err, "ctx", None) is None and args and args[0] in app_commands():
        path = f"archetool {args[0]}"
    param = getattr(err, "param", None)
    if isinstance(err, click.exceptions.MissingParameter) and param is not None:
        if param.param_type_name == "argument":
            what = f"missing argument {(param.metavar or param.name).upper()}"
        else:
            what = f"missing option {param.opts[0]}"
    elif isinstance(err, click.exceptions.NoSuchOption):
        what = f"{err.option_name}: no such option of '{path}'"
        if err.option_name in ("-q", "--quiet", "-v", "--verbose"):
            what += f"; {err.option_name} goes before the command: archetool {err.option_name} {path.split()[-1]} ..."
        elif err.possibilities:
            near = sorted(err.possibilities, key=lambda o: -difflib.SequenceMatcher(None, err.option_name, o).ratio())
            what += f"; did you mean {' or '.join(near[:2])}?"
    elif isinstance(err, click.exceptions.BadParameter) and param is not None:
        name = param.opts[0] if param.param_type_name == "option" else (param.metavar or param.name).upper()
        what = f"{name}: {_bad_value(err)}"
    elif isinstance(err, click.exceptions.BadOptionUsage) and "requires an argument" in err.message:
        what = f"{err.option_name}: needs a value"
    else:
        what = err.message.rstrip(".").replace(". Did you mean", "; did you mean")
        what = what[:1].lower() + what[1:]
        if what.startswith("got unexpected extra argument") and path.split()[-1] in EXTRA_ARGUMENT_HINTS:
            what += f"; {EXTRA_ARGUMENT_HINTS[path.split()[-1]]}"
    return f"error: {' '.join(what.split())} (see '{path} --help')"


#: what a user who typed extra positional arguments most likely meant, per command
EXTRA_ARGUMENT_HINTS = {
    "interpolate": "the endpoints are options: archetool interpolate MODEL --start a0 --end a1",
    "sample": "choose with options, e.g. archetool sample MODEL --archetype a0, --label L or --target SIDE=VALUE",
}


def app_commands() -> list[str]:
    """The subcommand names."""
    return [c.name or c.callback.__name__ for c in app.registered_commands]


class _Commands(TyperGroup):
    """Turns user errors into one ``error: ...`` line on stderr and a non-zero exit code: archetool's own
    (:class:`ArchetoolError`, exit code 2 or the error's) and click's usage errors (unknown option or
    command, missing argument, bad value: exit code 2), which typer would draw as a boxed panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        click = _click()
        try:
            # one program name in usage and messages, whether run as `archetool`, `python -m archetool` or in tests
            result = super().main(args=args, prog_name="archetool", complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except click.exceptions.UsageError as err:
            if not standalone_mode:
                raise
            typer.echo(usage_error_line(err, list(sys.argv[1:] if args is None else args)), err=True)
            sys.exit(err.exit_code)
        except click.exceptions.ClickException as err:  # e.g. FileError: still one line
            if not standalone_mode:
                raise
            typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        if not standalone_mode:
            return result
        # without standalone mode click returns an Exit's code (--help, typer.Exit) instead of exiting
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        from archetool import atomic

        try:
            result = super().invoke(ctx)
            atomic.raise_pending_interrupt()  # a signal whose exception Python swallowed: the command still ends interrupted
            return result
        except ArchetoolError as err:
            typer.echo(f"error: {_name_stdin(str(err))}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (see main): one line, exit 128 + signal
            typer.echo(f"error: {_interrupted_line(err)}", err=True)
            raise typer.Exit(128 + int(getattr(err, "signum", signal.SIGINT))) from None
        except BrokenPipeError:  # `archetool embed ... | head`: the reader closed the pipe; click would exit 1
            _discard_stdout()
            raise typer.Exit(141) from None  # 128 + SIGPIPE, what a shell expects from a writer cut short
        except OSError as err:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            typer.echo(f"error: {_name_stdin(where + str(err.strerror or err))}", err=True)
            raise typer.Exit(1) from None


def _name_stdin(text: str) -> str:
    """A message with the temporary copy of standard input ('-') called "standard input"."""
    from archetool.data.readers import name_stdin

    return name_stdin(text)


class _StdinNames(logging.Filter):
    """Log lines call the temporary copy of standard input "standard input" (as error lines do)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        named = _name_stdin(message)
        if named != message:
            record.msg, record.args = named, None
        return True


def _discard_stdout() -> None:
    """Point stdout at /dev/null so flushing the rest at exit raises no second BrokenPipeError
    ("Exception ignored ... BrokenPipeError" at interpreter shutdown)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced or closed (tests): nothing to protect
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM sends it before a job's time limit), raised in the main thread like Ctrl-C."""

    signum = signal.SIGTERM


def _on_signal(signum, frame) -> None:
    """SIGTERM -> Terminated, SIGINT -> KeyboardInterrupt, recorded first (see ``atomic.note_interrupt``: if Python
    swallows the exception, no output is committed after it and the command still ends interrupted)."""
    from archetool import atomic

    raise atomic.note_interrupt(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())


def _unraisable(info) -> None:
    """sys.unraisablehook: an interrupt's exception that Python could not raise (see :func:`_on_signal`) is not
    printed as a traceback; it was recorded and ends the command with its one line. Anything else as usual."""
    if isinstance(info.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(info)


def _resume_command() -> str:
    """The user's command line (sys.argv), shell-quoted, with --resume added if absent."""
    prog = "archetool" if Path(sys.argv[0]).name == "archetool" else "python -m archetool"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun's own options are not visible here
        prog = "torchrun <the same torchrun options> -m archetool"
    args = list(sys.argv[1:])
    if "--resume" not in args:
        args.append("--resume")
    return " ".join([prog, shlex.join(args)])


def _interrupted_line(err: KeyboardInterrupt) -> str:
    describe = getattr(err, "describe", None)  # fitting.FitInterrupted knows the epoch and checkpoint
    if describe is not None:
        return describe(_resume_command())
    return "interrupted by " + ("SIGTERM" if getattr(err, "signum", signal.SIGINT) == signal.SIGTERM else "Ctrl-C (SIGINT)")


app = typer.Typer(
    cls=_Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Interpretable deep generative models (deepaa, nvae, svqvae) for molecules, expression profiles and tables.",
)
log = logging.getLogger("archetool")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("archetool: %(levelname)s: %(message)s" if verbose else "archetool: %(message)s"))
    handler.addFilter(_StdinNames())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))
    log.propagate = False
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(Transforming to str index|ImplicitModificationWarning).*")


def _print_version(value: bool) -> None:
    if value:
        from archetool import __version__

        typer.echo(f"archetool {__version__}")
        raise typer.Exit()


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
          version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    _setup_logging(verbose, quiet)


FORMAT_HELP = "Format of data read from standard input ('-'): smi | csv | tsv."
NA_HELP = ("A token that marks a missing value in a text table, e.g. '?' (repeatable, or comma-separated); "
           "pandas' usual set (empty, NA, N/A, NaN, nan, NULL, null, None, #N/A, ...) always does.")
THREADS_HELP = ("CPU threads for torch (default: OMP_NUM_THREADS, else the CPUs this process may use - affinity, "
                "cgroup quota, SLURM_CPUS_PER_TASK - less those other jobs keep busy).")
JOBS_HELP = "Worker processes featurising molecules (default: the cores available)."


def _data_path(data: Optional[Path], fmt: Optional[str]) -> Optional[Path]:
    """DATA as given, or for '-' standard input spooled to a temporary file (see readers.resolve_data)."""
    from archetool.data.readers import resolve_data

    return None if data is None else Path(resolve_data(data, fmt))


def _set_jobs(jobs: Optional[int]) -> None:
    from archetool.data.featurizers import set_default_jobs

    set_default_jobs(jobs)


def _set_threads(threads: Optional[int]) -> None:
    """torch's CPU threads for this command: --threads, else archetool.threads.default_threads()."""
    from archetool.threads import apply_threads

    apply_threads(threads, what="this command")


def _parse_ks(text: str) -> list[int]:
    """'4' -> [4]; '2-6' -> [2..6]; '2,3,5' -> [2, 3, 5]; anything else (empty, negative, descending,
    not numbers) -> an ArchetoolError saying what is accepted. Every k is at least 2."""
    import re

    forms = "give a whole number (4), a range (2-8) or a list (2,3,5)"
    spec = text.strip()
    if not spec:
        raise ArchetoolError(f"--k is empty; {forms}")
    span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", spec)
    if span:
        lo, hi = int(span[1]), int(span[2])
        if lo > hi:
            raise ArchetoolError(f"--k {spec}: the range runs downwards; write the smaller number first (--k {hi}-{lo})")
        ks = list(range(lo, hi + 1))
    elif re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", spec):
        ks = list(dict.fromkeys(int(part) for part in spec.split(",") if part.strip()))
    elif re.fullmatch(r"-\s*\d+", spec):
        raise ArchetoolError(f"--k {spec}: the number of archetypes cannot be negative; {forms}")
    else:
        raise ArchetoolError(f"--k {spec!r}: not understood; {forms}")
    if min(ks) < 2:
        every = "" if len(ks) == 1 and spec.isdigit() else "every k must be at least 2: "
        raise ArchetoolError(f"--k {spec}: {every}deep archetypal analysis needs at least 2 archetypes (k >= 2)")
    return ks


_SEPARATORS = {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|", "space": " "}


def _parse_sep(text: str | None) -> str | None:
    """--sep: one character, or tab / semicolon / comma / pipe / space (or '\\t')."""
    if text is None:
        return None
    sep = _SEPARATORS.get(text.lower(), text)
    if len(sep) != 1:
        raise ArchetoolError(f"--sep {text!r}: give one character (--sep ';') or tab, semicolon, comma, pipe, space")
    return sep


def _parse_na_values(items: list[str]) -> list[str]:
    """--na-values '?' --na-values 'n.a.,-999' -> ['?', 'n.a.', '-999']."""
    return [token.strip() for item in items for token in item.split(",") if token.strip()]


def _parse_hidden(text: str) -> list[int]:
    """'256,128' -> [256, 128]; every width a whole number >= 1."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ArchetoolError(f"--hidden {text!r}: give layer widths as whole numbers of at least 1, comma-separated (e.g. --hidden 256,128)")
    return [int(part) for part in parts]


def _parse_settings(items: list[str]) -> dict:
    """--set key=value (value parsed as JSON when it can be: numbers, true/false, lists)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ArchetoolError(f"--set {item!r}: expected KEY=VALUE, e.g. --set prior=dirichlet")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def _stdout_or_file(frame, out: Optional[Path]) -> None:
    from archetool.io_tables import write_table

    if out is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        write_table(frame, out)
        log.info("wrote %d rows to %s", len(frame), out)


@app.command()
def fit(
    data: Path = typer.Argument(..., metavar="DATA", help="Input file: .csv .tsv .parquet .smi .sdf .h5ad .gctx .gct, or - (standard input, with --format)."),
    model: str = typer.Option("deepaa", "--model", "-m", help="deepaa | nvae | svqvae"),
    side: List[str] = typer.Option([], "--side", "-s", help="Side-information column (repeatable; deepaa)."),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Class column / obs key / column-metadata field."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Table mapping sample ids (first column) to classes."),
    k: str = typer.Option("4", "--k", help="Archetypes (deepaa). A range 2-8 or list 2,3,5 fits each and writes an elbow table."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="nvae class latent / svqvae code size (deepaa: k-1)."),
    shared_dim: Optional[int] = typer.Option(None, "--shared-dim", help="nvae shared latent size."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="Hidden layer widths, e.g. 256,128."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Passes over the training rows (default: 100, or fewer for large data: about 10,000 optimizer steps at most)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=2, help="Rows per step (default 128; on small tables smaller, not below 16, so that an epoch has at least 8 steps (deepaa, svqvae) or 16 (nvae))."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    final_lr: Optional[float] = typer.Option(None, "--final-lr-fraction", min=0.0, max=1.0,
                                             help="Last epoch's learning rate / --lr, cosine decay (default: the model's; deepaa 0.01, others 1 = constant)."),
    restarts: int = typer.Option(1, "--restarts", min=1, help="Train this many initialisations (seed, seed+1, ...) and keep the lowest validation loss."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.9, help="Held-out fraction for validation and early stopping."),
    patience: Optional[int] = typer.Option(None, "--patience", min=0, help="Stop after this many epochs without validation improvement (0 = never; default 15, and 50 for nvae/svqvae on tables below 2,000 rows)."),
    refit: Optional[bool] = typer.Option(None, "--refit/--no-refit", help="After early stopping chose the epoch, train a fresh model on every row (validation rows included) for that many epochs and keep it; held-out scores are the first model's (default: on for nvae/svqvae with fewer than 10 rows per class, and for nvae below 2,000 rows)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Model directory (default: beside the data)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing side values or labels."),
    strict_classes: bool = typer.Option(False, "--strict-classes", help="Refuse classes with fewer than 2 samples."),
    layer: Optional[str] = typer.Option(None, "--layer", help="h5ad layer to use instead of X."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Delimiter of a text table: one character or tab, semicolon, comma, pipe (default: sniffed)."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column holding sample ids."),
    smiles_column: Optional[str] = typer.Option(None, "--smiles-column", help="Column holding SMILES (tables)."),
    radius: int = typer.Option(2, "--radius", min=0, help="Morgan radius."),
    n_bits: int = typer.Option(2048, "--n-bits", min=8, help="Morgan fingerprint size."),
    counts: bool = typer.Option(False, "--counts", help="Morgan count fingerprints (log1p, Gaussian)."),
    descriptors: bool = typer.Option(True, "--descriptors/--no-descriptors", help="Add RDKit 2D descriptors to the fingerprint bits."),
    likelihood: Optional[str] = typer.Option(None, "--likelihood", help="gaussian | bernoulli | nb (raw counts: negative binomial with per-cell library size; default: from the features)."),
    prior: Optional[str] = typer.Option(None, "--prior", help="deepaa prior: normal | dirichlet."),
    settings: List[str] = typer.Option([], "--set", help="Other model hyper-parameters, KEY=VALUE (repeatable); decoder.KEY=VALUE sets the molecule decoder's (e.g. decoder.hidden_dim=384)."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="Molecules: the alphabet of the decoder that generates new molecules, smiles | selfies, or none (default: smiles from 5,000 molecules up, else selfies)."),
    decoder_epochs: Optional[int] = typer.Option(None, "--decoder-epochs", min=0, help="Molecules: epochs of the second stage, in which the decoder trains alone on the frozen model (default: as many as --epochs; 0: no such stage, the decoder trains beside the main model)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    sweep_seeds: int = typer.Option(3, "--sweep-seeds", min=1, help="With a range of --k: seeds fitted per k (mean and sd plotted)."),
    split: str = typer.Option("random", "--split", help="Validation split: random (stratified by --label) | scaffold (molecules: whole Bemis-Murcko scaffolds held out)."),
    descriptor_set: str = typer.Option("fast", "--descriptor-set", help="RDKit descriptors: fast (default) | full (adds qed, SPS, AvgIpc, BertzCT; slower)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Molecules: the sequence decoder's longest molecule in tokens (SMILES tokens or SELFIES symbols; default: the data's 99.5th percentile); longer ones train the encoder and side head only."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    na_values: List[str] = typer.Option([], "--na-values", help=NA_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the model already in --out (with its archetypes and other results); refused without it."),
) -> None:
    """Train a model and save it to a model directory."""
    from archetool.data.readers import STDIN_NAME, is_stdin
    from archetool.fitting import FitOptions

    from_stdin = is_stdin(data)
    if from_stdin and out is None:
        out = Path(f"stdin.{model}.archetool")
    data = _data_path(data, fmt)
    _set_jobs(jobs)

    ks = _parse_ks(k)
    model_options = _parse_settings(settings)
    decoder_options = {key.split(".", 1)[1]: model_options.pop(key) for key in list(model_options) if key.startswith("decoder.")}
    if prior is not None:
        model_options["prior"] = prior
    hidden_widths = _parse_hidden(hidden) if hidden else None
    options = FitOptions(
        data=str(data), model=model, side=list(side), label=label, labels_file=str(labels) if labels else None,
        out=str(out) if out else None, k=ks[0], latent_dim=latent_dim, shared_dim=shared_dim, hidden=hidden_widths,
        epochs=epochs, batch_size=batch_size, lr=lr, final_lr_fraction=final_lr, restarts=restarts, val_fraction=val_fraction, patience=patience, seed=seed,
        device=device, resume=resume, drop_missing=drop_missing, strict_classes=strict_classes, layer=layer, sep=_parse_sep(sep),
        id_column=id_column, smiles_column=smiles_column, radius=radius, n_bits=n_bits, counts=counts,
        descriptors=descriptors, likelihood=likelihood, model_options=model_options, progress_bar=progress,
        decoder=decoder, decoder_options=decoder_options, decoder_epochs=decoder_epochs, split=split, jobs=jobs, descriptor_set=descriptor_set,
        max_tokens=max_tokens, threads=threads, refit=refit,
        na_values=_parse_na_values(na_values), overwrite=overwrite, data_label=STDIN_NAME if from_stdin else None,
    )
    if len(ks) > 1:
        if model != "deepaa":
            raise ArchetoolError(f"--k {k}: a sweep over k applies to deepaa only")
        from archetool.analysis.deepaa import sweep_k

        out_dir = Path(options.out) if options.out else options.default_out().with_name(Path(data).name.split(".")[0] + ".k-sweep")
        table = sweep_k(options, ks, out_dir, seeds=sweep_seeds)
        log.info("wrote %s and %s", out_dir / "k_sweep.csv", out_dir / "k_sweep.png")
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return
    from archetool.fitting import fit as run_fit

    run_fit(options)


@app.command()
def embed(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="Model directory from 'archetool fit'."),
    data: Path = typer.Argument(..., metavar="DATA", help="Data to embed (any input format), or - (standard input, with --format)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=".csv .tsv .parquet .npy .h5ad (default: CSV on stdout)."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="Rows per forward pass."),
    chunk_rows: int = typer.Option(65536, "--chunk-rows", min=1, help="Rows read from disk at a time, at most (wide inputs use fewer: a chunk stays under 32 MiB)."),
    device: str = typer.Option("auto", "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help=JOBS_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    layer: Optional[str] = typer.Option(None, "--layer", help="h5ad layer to use instead of X (default: the model's training layer)."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Delimiter of a text table: one character or tab, semicolon, comma, pipe (default: sniffed)."),
    allow_missing_features: bool = typer.Option(False, "--allow-missing-features",
                                                help="Fill features (genes, columns) the data lack with the training mean, with a warning, instead of refusing."),
    na_values: List[str] = typer.Option([], "--na-values", help=NA_HELP),
) -> None:
    """Write per-sample embeddings (streamed: memory does not grow with the file)."""
    from archetool.data.source import ReadOptions
    from archetool.embedding import embed_to

    data = _data_path(data, fmt)
    _set_jobs(jobs)
    _set_threads(threads)
    from archetool.data.readers import data_extension

    if data_extension(Path(data)) in (".smi", ".smiles", ".sdf") and Path(data).is_file() and Path(data).stat().st_size > 40_000:
        # enough molecules for worker processes (~500): they warm up while torch and the model load
        from archetool.data.featurizers import start_workers_early

        start_workers_early()
    embed_to(model_dir, data, out, batch_size=batch_size, chunk_rows=chunk_rows, device=device, threads=threads,
             read_options=ReadOptions(layer=layer, sep=_parse_sep(sep), na_values=tuple(_parse_na_values(na_values))), allow_missing_features=allow_missing_features)


@app.command()
def archetypes(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data for exemplars (default: the training rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: MODEL/archetypes)."),
    n_exemplars: int = typer.Option(5, "--n-exemplars", min=1),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Write archetypes / class codes, exemplars and pictures."""
    data = _data_path(data, fmt)
    _set_threads(threads)
    from archetool.analysis import adapter
    from archetool.analysis.base import analysis_rows
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(model_dir)
    rows = analysis_rows(model, data)
    from archetool.atomic import staged_dir

    out_dir = out or (Path(model_dir) / "archetypes")
    with staged_dir(out_dir) as stage:  # all files appear together, or none
        written = adapter(model.kind).write_archetypes(model, rows, stage, n_exemplars=n_exemplars)
    for path in written:
        log.info("wrote %s", out_dir / Path(path).name)


@app.command()
def interpolate(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    start: Optional[str] = typer.Option(None, "--start", help="Archetype (a0), class label or sample id."),
    end: Optional[str] = typer.Option(None, "--end", help="Archetype (a1), class label or sample id."),
    steps: int = typer.Option(10, "--steps", min=2),
    grid: Optional[int] = typer.Option(None, "--grid", min=1, help="deepaa: decode a barycentric grid with this many steps per edge instead."),
    allow_repeats: bool = typer.Option(False, "--allow-repeats", help="Molecule models: keep every point's greedy molecule, even one an earlier point has (default: such a point gets the most likely new molecule sampled at it)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data whose sample ids may be endpoints (default: training rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Decode points on a straight line in latent space (or a barycentric grid)."""
    data = _data_path(data, fmt)
    _set_threads(threads)
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(model_dir)
    _stdout_or_file(model.interpolate(start, end, steps, grid=grid, data=data, distinct=not allow_repeats), out)


@app.command()
def sample(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    n: int = typer.Option(10, "--n", min=1),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Class to sample (class-conditioned models)."),
    archetype: Optional[str] = typer.Option(None, "--archetype", "-a", help="deepaa: sample near this archetype (a0, a1, ...)."),
    spread: float = typer.Option(0.2, "--spread", help="deepaa --archetype: 0 = at the archetype, 1 = anywhere in the simplex."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="deepaa: sample at this simplex point, w0,w1,... (>= 0, sum 1)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", min=0.0, help="Scales the prior's spread and the molecule token sampling (0: greedy; default: for deepaa models that generate molecules 1.0 with a SMILES decoder, 0.7 with SELFIES; else 1)."),
    seed: int = typer.Option(0, "--seed"),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Real data for nearest neighbours (default: training rows)."),
    target: Optional[list[str]] = typer.Option(None, "--target", metavar="SIDE=VALUE", help="deepaa: targeted design, SIDE=VALUE (repeatable): of 4 x N molecules decoded near the target, the N whose re-predicted value is nearest, ranked by that distance."),
    reference: Optional[Path] = typer.Option(None, "--reference", metavar="FILE", help="SMILES file or CSV that 'novel' and the most similar molecule are judged against (default: the training molecules)."),
    prior: str = typer.Option("posterior", "--prior", metavar="posterior|dirichlet", help="deepaa: posterior (the training rows' weights, default) or dirichlet."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Draw new samples (new molecules, for molecule models) from the model's prior and decode them."""
    data = _data_path(data, fmt)
    _set_threads(threads)
    from archetool.model import ArchetoolModel

    parsed = None
    if weights is not None:
        try:
            parsed = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ArchetoolError(f"--weights {weights!r}: give comma-separated numbers, e.g. 0.7,0.1,0.1,0.1") from None
    model = ArchetoolModel.load(model_dir)
    table = model.sample(n, label=label, temperature=temperature, archetype=archetype, spread=spread, weights=parsed,
                         seed=seed, data=data, target=target or None, reference=reference, prior=prior)
    _stdout_or_file(table, out)
    if out is not None and "generation" in table.attrs:
        from archetool.atomic import write_text_atomic

        metrics_path = out.with_name(out.name.split(".")[0] + ".metrics.json")
        write_text_atomic(metrics_path, json.dumps(table.attrs["generation"], indent=1))
        log.info("wrote %s", metrics_path)


@app.command()
def info(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a model directory."""
    from archetool.model import describe

    summary = describe(model_dir)  # JSON only: no torch
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=str))
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        typer.echo(f"{key:>18}: {value}")


@app.command()
def example(
    name: str = typer.Argument(..., metavar="NAME", help="molecules | table | expression | lincs (generated)."),
    directory: Path = typer.Argument(..., metavar="DIR", help="Directory to copy the example into (made if absent)."),
    signatures: int = typer.Option(240, "--signatures", min=1, help="lincs: rows (signatures) of the generated .gctx, e.g. 200000 for a batch-embedding test."),
) -> None:
    """Copy a bundled example data set into DIR (the files the tutorials start from)."""
    from archetool.examples import EXAMPLES, copy_example

    written = copy_example(name, directory, signatures=signatures)
    log.info("wrote %s (%s)", ", ".join(str(p) for p in written), EXAMPLES[name].about)
    log.info("next: %s", EXAMPLES[name].next_step.format(dir=directory))


def main() -> None:
    """Console entry point (``archetool`` and ``python -m archetool``)."""
    signal.signal(signal.SIGTERM, _on_signal)  # handled like Ctrl-C: files cleaned up, one line, exit 143
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the shell ignores it (cmd &)
        signal.signal(signal.SIGINT, _on_signal)
    sys.unraisablehook = _unraisable
    try:
        app()
    except KeyboardInterrupt as err:  # outside a command (e.g. while importing)
        typer.echo(f"error: {_interrupted_line(err)}", err=True)
        sys.exit(128 + int(getattr(err, "signum", signal.SIGINT)))
    except BrokenPipeError:  # e.g. `archetool embed ... | head`: the reader closed the pipe
        _discard_stdout()
        sys.exit(141)
