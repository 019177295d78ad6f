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


class _Commands(TyperGroup):
    """Turns user errors into one ``error: ...`` line on stderr and a non-zero exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ArchetoolError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (see main): one line, exit 128 + signal
            typer.echo(f"error: {_interrupted_line(err)}", err=True)
            raise typer.Exit(128 + int(getattr(err, "signum", signal.SIGINT))) from None
        except BrokenPipeError:
            raise
        except OSError as err:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            typer.echo(f"error: {where}{err.strerror or err}", err=True)
            raise typer.Exit(1) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM sends it before a job's time limit), raised in the main thread like Ctrl-C."""

    signum = signal.SIGTERM


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


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
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))
    log.propagate = False
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(Transforming to str index|ImplicitModificationWarning).*")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors.")) -> None:
    _setup_logging(verbose, quiet)


def _parse_ks(text: str) -> list[int]:
    """'4' -> [4]; '2-6' -> [2..6]; '2,3,5' -> [2, 3, 5]."""
    try:
        if "-" in text.strip("-"):
            lo, hi = text.split("-", 1)
            return list(range(int(lo), int(hi) + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ArchetoolError(f"--k {text!r}: give a whole number (4), a range (2-8) or a list (2,3,5)") from None


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
    data: Path = typer.Argument(..., help="Input file: .csv .tsv .parquet .smi .sdf .h5ad .gctx .gct"),
    model: str = typer.Option("deepaa", "--model", "-m", help="deepaa | nvae | svqvae"),
    side: List[str] = typer.Option([], "--side", "-s", help="Side-information column (repeatable; deepaa)."),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Class column / obs key / column-metadata field."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Table mapping sample ids (first column) to classes."),
    k: str = typer.Option("4", "--k", help="Archetypes (deepaa). A range 2-8 or list 2,3,5 fits each and writes an elbow table."),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="nvae class latent / svqvae code size (deepaa: k-1)."),
    shared_dim: Optional[int] = typer.Option(None, "--shared-dim", help="nvae shared latent size."),
    hidden: Optional[str] = typer.Option(None, "--hidden", help="Hidden layer widths, e.g. 256,128."),
    epochs: int = typer.Option(100, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=2),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    final_lr: Optional[float] = typer.Option(None, "--final-lr-fraction", min=0.0, max=1.0,
                                             help="Last epoch's learning rate / --lr, cosine decay (default: the model's; deepaa 0.01, others 1 = constant)."),
    restarts: int = typer.Option(1, "--restarts", min=1, help="Train this many initialisations (seed, seed+1, ...) and keep the lowest validation loss."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.9, help="Held-out fraction for validation and early stopping."),
    patience: int = typer.Option(15, "--patience", min=0, help="Stop after this many epochs without validation improvement (0 = never)."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Model directory (default: beside the data)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing side values or labels."),
    strict_classes: bool = typer.Option(False, "--strict-classes", help="Refuse classes with fewer than 2 samples."),
    layer: Optional[str] = typer.Option(None, "--layer", help="h5ad layer to use instead of X."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Column holding sample ids."),
    smiles_column: Optional[str] = typer.Option(None, "--smiles-column", help="Column holding SMILES (tables)."),
    radius: int = typer.Option(2, "--radius", min=0, help="Morgan radius."),
    n_bits: int = typer.Option(2048, "--n-bits", min=8, help="Morgan fingerprint size."),
    counts: bool = typer.Option(False, "--counts", help="Morgan count fingerprints (log1p, Gaussian)."),
    descriptors: bool = typer.Option(True, "--descriptors/--no-descriptors", help="Add RDKit 2D descriptors to the fingerprint bits."),
    likelihood: Optional[str] = typer.Option(None, "--likelihood", help="gaussian | bernoulli (default: from the features)."),
    prior: Optional[str] = typer.Option(None, "--prior", help="deepaa prior: normal | dirichlet."),
    settings: List[str] = typer.Option([], "--set", help="Other model hyper-parameters, KEY=VALUE (repeatable)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Train a model and save it to a model directory."""
    from archetool.fitting import FitOptions

    ks = _parse_ks(k)
    model_options = _parse_settings(settings)
    if prior is not None:
        model_options["prior"] = prior
    hidden_widths = [int(h) for h in hidden.split(",")] if hidden else None
    options = FitOptions(
        data=str(data), model=model, side=list(side), label=label, labels_file=str(labels) if labels else None,
        out=str(out) if out else None, k=ks[0], latent_dim=latent_dim, shared_dim=shared_dim, hidden=hidden_widths,
        epochs=epochs, batch_size=batch_size, lr=lr, final_lr_fraction=final_lr, restarts=restarts, val_fraction=val_fraction, patience=patience, seed=seed,
        device=device, resume=resume, drop_missing=drop_missing, strict_classes=strict_classes, layer=layer,
        id_column=id_column, smiles_column=smiles_column, radius=radius, n_bits=n_bits, counts=counts,
        descriptors=descriptors, likelihood=likelihood, model_options=model_options, progress_bar=progress,
    )
    if len(ks) > 1:
        if model != "deepaa":
            raise ArchetoolError(f"--k {k}: a sweep over k applies to deepaa only")
        from archetool.analysis.deepaa import sweep_k

        out_dir = Path(options.out) if options.out else options.default_out().with_name(Path(data).name.split(".")[0] + ".k-sweep")
        table = sweep_k(options, ks, out_dir)
        log.info("wrote %s and %s", out_dir / "k_sweep.csv", out_dir / "k_sweep.png")
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return
    from archetool.fitting import fit as run_fit

    run_fit(options)


@app.command()
def embed(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="Model directory from 'archetool fit'."),
    data: Path = typer.Argument(..., help="Data to embed (any input format)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=".csv .tsv .parquet .npy .h5ad (default: CSV on stdout)."),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="Rows per forward pass."),
    chunk_rows: int = typer.Option(65536, "--chunk-rows", min=1, help="Rows read from disk at a time, at most (wide inputs use fewer: a chunk stays under 32 MiB)."),
    device: str = typer.Option("auto", "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the forward passes (default: OMP_NUM_THREADS, else the cores)."),
) -> None:
    """Write per-sample embeddings (streamed: memory does not grow with the file)."""
    from archetool.embedding import embed_to

    embed_to(model_dir, data, out, batch_size=batch_size, chunk_rows=chunk_rows, device=device, threads=threads)


@app.command()
def archetypes(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data for exemplars (default: the training rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: MODEL/archetypes)."),
    n_exemplars: int = typer.Option(5, "--n-exemplars", min=1),
) -> None:
    """Write archetypes / class codes, exemplars and pictures."""
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
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data whose sample ids may be endpoints (default: training rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
) -> None:
    """Decode points on a straight line in latent space (or a barycentric grid)."""
    from archetool.analysis import adapter
    from archetool.analysis.base import analysis_rows
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(model_dir)
    analysis = adapter(model.kind)
    rows = analysis_rows(model, data) if (data is not None or model.training_rows is not None) else None
    if grid is not None:
        if not hasattr(analysis, "grid"):
            raise ArchetoolError(f"--grid applies to deepaa models; {model_dir} is {model.kind}")
        table = analysis.grid(model, grid, rows)
    else:
        if start is None or end is None:
            raise ArchetoolError("interpolate needs --start and --end (or --grid N for deepaa)")
        table = analysis.interpolate(model, start, end, steps, rows)
    _stdout_or_file(table, out)


@app.command()
def sample(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    n: int = typer.Option(10, "--n", min=1),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Class to sample (class-conditioned models)."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", min=0.0, help="Scales the prior's spread."),
    seed: int = typer.Option(0, "--seed"),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Real data for nearest neighbours (default: training rows)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o"),
) -> None:
    """Draw new samples from the model's prior and decode them."""
    import torch

    from archetool.analysis import adapter
    from archetool.analysis.base import analysis_rows
    from archetool.model import ArchetoolModel

    model = ArchetoolModel.load(model_dir)
    rows = analysis_rows(model, data) if (data is not None or model.training_rows is not None) else None
    torch.manual_seed(seed)
    table = adapter(model.kind).sample(model, n, label, temperature, rows)
    _stdout_or_file(table, out)


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


def main() -> None:
    """Console entry point (``archetool`` and ``python -m archetool``)."""
    signal.signal(signal.SIGTERM, _on_sigterm)  # handled like Ctrl-C: files cleaned up, one line, exit 143
    try:
        app()
    except KeyboardInterrupt as err:  # outside a command (e.g. while importing)
        typer.echo(f"error: {_interrupted_line(err)}", err=True)
        sys.exit(128 + int(getattr(err, "signum", signal.SIGINT)))
    except BrokenPipeError:  # e.g. `archetool embed ... | head`: the reader closed the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
