"""GPU checks: run only where CUDA is available (skipped cleanly elsewhere)."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST_FIT, run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fit_and_embed_on_cuda_match_cpu_embedding(tmp_path, table_csv):
    out = tmp_path / "gpu"
    result = run_cli("fit", table_csv, "--side", "y", "--device", "cuda", "--out", out, *FAST_FIT)
    assert result.exit_code == 0, result.output
    import json

    assert json.loads((out / "config.json").read_text())["device"].startswith("cuda")
    gpu, cpu = tmp_path / "g.parquet", tmp_path / "c.parquet"
    assert run_cli("embed", out, table_csv, "--device", "cuda", "--out", gpu).exit_code == 0
    assert run_cli("embed", out, table_csv, "--device", "cpu", "--out", cpu).exit_code == 0
    a, b = pd.read_parquet(gpu), pd.read_parquet(cpu)
    np.testing.assert_allclose(a["z0"], b["z0"], rtol=1e-3, atol=1e-4)


def test_auto_device_picks_cuda():
    from archetool.training.device import resolve_device

    assert resolve_device("auto").type == "cuda"
