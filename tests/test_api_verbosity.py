"""The Python API reports like the CLI (issue 15 item 12): saved path, epoch lines and scores on stderr by
default; ``verbose=False`` / ``archetool.settings.verbosity`` quiet it; the model's repr shows where it
lives and its held-out scores."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, make_table

SCRIPT = textwrap.dedent("""
    import logging, sys
    import archetool
    def mark(name):
        print(f"=== {name}", file=sys.stderr, flush=True)
    mark("default")
    archetool.fit("t.csv", side="y", epochs=2, out="a.deepaa")
    mark("verbose=False")
    archetool.fit("t.csv", side="y", epochs=2, out="b.deepaa", verbose=False)
    mark("settings warning")
    archetool.settings.verbosity = "warning"
    archetool.fit("t.csv", side="y", epochs=2, out="c.deepaa")
    mark("verbose=True over settings")
    archetool.fit("t.csv", side="y", epochs=2, out="d.deepaa", verbose=True)
    archetool.settings.verbosity = "info"
    mark("basicConfig")
    logging.basicConfig(format="ROOT %(name)s %(message)s")
    archetool.fit("t.csv", side="y", epochs=2, out="e.deepaa")
    mark("end")
""")


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    """stderr of SCRIPT run as a plain script (stderr a pipe: plain lines), split at its markers."""
    where = tmp_path_factory.mktemp("api_verbosity")
    make_table(n=60).to_csv(where / "t.csv", index=False)
    (where / "x.py").write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "x.py"], cwd=where, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == ""  # reports go to stderr only
    parts = {}
    for chunk in run.stderr.split("=== ")[1:]:
        name, _, text = chunk.partition("\n")
        parts[name] = text
    return parts


def test_api_fit_reports_the_saved_path_epochs_and_scores_by_default(sections):
    text = sections["default"]
    assert "archetool: t.csv: 60 rows x 8 features" in text
    assert "archetool: epoch 1/2 train_loss=" in text and "archetool: epoch 2/2 " in text
    assert "archetool: saved deepaa model to a.deepaa (val_rows=6, val_r2_y=" in text
    # a warning is one line with the same prefix
    assert "archetool: t.csv: 1 column is not numeric and left out of the features: 'cls'" in text


def test_verbose_false_and_settings_keep_warnings_only(sections):
    for name in ("verbose=False", "settings warning"):
        text = sections[name]
        assert "saved" not in text and "epoch" not in text and "rows x" not in text, (name, text)
        assert "left out of the features: 'cls'" in text, (name, text)  # warnings still shown
    assert "saved deepaa model to d.deepaa" in sections["verbose=True over settings"]


def test_configured_logging_gets_the_records_once(sections):
    text = sections["basicConfig"]
    # the user's root handler prints them, at the verbosity set above ("info"); no second archetool handler
    assert "ROOT archetool t.csv: 1 column is not numeric" in text
    assert text.count("saved deepaa model to e.deepaa") == 1 and "ROOT archetool saved deepaa model to e.deepaa" in text
    assert "archetool: " not in text
    assert sections["end"] == ""


def test_repr_shows_kind_directory_data_and_held_out_scores(tmp_path, caplog):
    import archetool

    make_table(n=60).to_csv(tmp_path / "t.csv", index=False)
    model = archetool.fit(str(tmp_path / "t.csv"), side="y", epochs=2, out=str(tmp_path / "m.deepaa"))
    text = repr(model)
    summary = model.config["summary"]
    assert text.startswith("ArchetoolModel: deepaa, 8 features -> latent 3")
    assert f"directory: {tmp_path / 'm.deepaa'}" in text
    assert f"fitted on: {tmp_path / 't.csv'}, 60 rows ({summary['train_rows']} train, {summary['val_rows']} held out)" in text
    assert f"val_r2_y={summary['val_r2_y']:.4g}" in text and "val_loss=" in text
    loaded = repr(archetool.load(tmp_path / "m.deepaa"))
    assert loaded == text  # the same from the saved config.json and history.csv


def test_under_caplog_the_records_reach_caplog_and_verbose_false_drops_info(tmp_path, caplog):
    import archetool

    make_table(n=60).to_csv(tmp_path / "t.csv", index=False)
    before = list(logging.getLogger("archetool").handlers)
    with caplog.at_level(logging.INFO, logger="archetool"):
        archetool.fit(str(tmp_path / "t.csv"), side="y", epochs=1, out=str(tmp_path / "a"))
        assert any(r.getMessage().startswith("saved deepaa model to") for r in caplog.records)
        caplog.clear()
        archetool.fit(str(tmp_path / "t.csv"), side="y", epochs=1, out=str(tmp_path / "b"), verbose=False)
        assert not [r for r in caplog.records if r.levelno < logging.WARNING]
        assert any("left out of the features" in r.getMessage() for r in caplog.records)
        assert logging.getLogger("archetool").level == logging.INFO  # restored after the call
    assert logging.getLogger("archetool").handlers == before  # no handler added, none left behind


def test_verbosity_values():
    from archetool._settings import Settings, level_of

    assert level_of("warning") == level_of(1) == level_of(False) == logging.WARNING
    assert level_of("INFO") == level_of(2) == level_of(True) == logging.INFO
    assert level_of(4) == level_of("debug") == logging.DEBUG
    with pytest.raises(ValueError, match="verbosity 'loud': use one of 'error', 'warning', 'info', 'debug'"):
        level_of("loud")
    settings = Settings()
    settings.verbosity = 1
    assert settings.verbosity == "warning" and repr(settings) == "archetool.settings(verbosity='warning')"


def test_no_bar_when_quiet_or_not_interactive(monkeypatch):
    from archetool import progress

    log = logging.getLogger("archetool")
    old = log.level
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    try:
        log.setLevel(logging.INFO)
        assert progress.want_bar(None) is True
        log.setLevel(logging.WARNING)  # quiet (-q, verbose=False): no bar either
        assert progress.want_bar(None) is False
        assert progress.want_bar(True) is True
        log.setLevel(logging.INFO)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
        assert progress.want_bar(None) is False  # a pipe or a file: plain lines
    finally:
        log.setLevel(old)


def test_notebook_detection(monkeypatch):
    import types

    from archetool import progress

    class ZMQInteractiveShell:  # what get_ipython() returns in a Jupyter kernel
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert progress.in_notebook() is True
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed: plain lines
    assert progress.in_notebook() is False
    fake.get_ipython = lambda: None  # IPython imported, but no kernel
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert progress.in_notebook() is False


def test_an_api_call_inside_another_keeps_the_outer_verbosity(monkeypatch):
    """sample() calls embed(): the inner call must not undo fit(verbose=False) or the outer level."""
    from archetool import _settings

    monkeypatch.setattr(_settings.settings, "_explicit", True)  # verbosity "info", set by the user
    log = logging.getLogger("archetool")
    old = log.level
    with _settings.api_logging(False):
        with _settings.api_logging():
            assert log.level == logging.WARNING
        assert log.level == logging.WARNING
    assert log.level == old
