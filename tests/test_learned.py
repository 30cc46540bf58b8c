"""Learned tokenizers (vqvae, rvq, fsq): ids, training, diagnostics, save/load, CLI, and the torch-free core."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import dataset_root

from actok import create_tokenizer, load_tokenizer
from actok.bench import benchmark_tokenizer
from actok.cli import main as cli_main
from actok.errors import ActokError, ActokWarning

torch = pytest.importorskip("torch")

SHORT = {"max_epochs": 8, "progress": False}


def fit_quietly(name, chunks, validation=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        return create_tokenizer(name, **{**SHORT, **params}).fit(chunks, validation=validation)


@pytest.fixture(scope="module")
def rvq(pusht_chunks):
    return fit_quietly("rvq", pusht_chunks.train, pusht_chunks.holdout, n_layers=3, codebook_size=32, max_epochs=20)


def test_rvq_ids_are_layer_offset_and_prefixes_decode(rvq, pusht_chunks):
    ids = np.array(rvq.encode(pusht_chunks.holdout))
    assert rvq.vocab_size == 3 * 32 and ids.shape == (len(pusht_chunks.holdout), 3)
    for layer in range(3):  # every id of layer k lies in [32 k, 32 (k + 1))
        assert ids[:, layer].min() >= 32 * layer and ids[:, layer].max() < 32 * (layer + 1)
    x = pusht_chunks.holdout
    errors = [np.sqrt(np.mean((rvq.decode_layers(ids.tolist(), k) - x) ** 2)) for k in (1, 2, 3)]
    assert errors[2] < errors[0]  # finer layers refine the coarse primary code
    np.testing.assert_array_equal(rvq.decode_layers(ids.tolist(), 3), rvq.decode(ids.tolist()))
    # A prefix is not a valid full encoding, but "relaxed" decodes it coarse-to-fine.
    prefix = [row[:1] for row in ids.tolist()]
    out, valid = rvq.decode(prefix, return_valid=True, on_invalid="relaxed")
    assert not valid.any()
    np.testing.assert_array_equal(out, rvq.decode_layers(ids.tolist(), 1))
    with pytest.raises(ActokError, match=r"n_layers must be an integer in \[1, 3\], got 4"):
        rvq.decode_layers(ids.tolist(), 4)


def test_training_is_seeded_and_early_stops(pusht_chunks):
    a = fit_quietly("fsq", pusht_chunks.train[:600], levels=[5, 5, 5], patience=1, max_epochs=200)
    b = fit_quietly("fsq", pusht_chunks.train[:600], levels=[5, 5, 5], patience=1, max_epochs=200)
    assert a.encode(pusht_chunks.holdout) == b.encode(pusht_chunks.holdout)
    summary = a.training_summary
    assert summary["stopped_by"] == "early_stopping" and summary["epochs_run"] < 200
    assert summary["best_epoch"] == summary["epochs_run"] - 2  # patience 1: one epoch past the best
    assert summary["validation_source"].startswith("last ")  # no held-out episodes given
    best = min(h["val_rmse"] for h in summary["history"])
    assert summary["validation_rmse"] == pytest.approx(best)


def test_vqvae_sub_chunks_and_dead_code_reset(pusht_chunks):
    tok = fit_quietly("vqvae", pusht_chunks.train, codebook_size=64, code_dim=8, chunk_size=5, max_epochs=20)
    ids = tok.encode(pusht_chunks.holdout)
    assert tok.tokens_per_chunk == 2 and all(len(s) == 2 for s in ids) and tok.vocab_size == 64
    # The tutorial's codebook initialisation (±1/K) collapses onto a few codes without the reset.
    assert tok.training_summary["train_codes"]["codebook_utilization"][0] > 0.5
    with pytest.raises(
        ActokError, match="chunk_size 4 does not divide the horizon 10; valid chunk_size values: 1, 2, 5, 10"
    ):
        create_tokenizer("vqvae", chunk_size=4, **SHORT).fit(pusht_chunks.train)


def test_save_load_needs_only_weights_and_config(rvq, pusht_chunks, tmp_path):
    rvq.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["actok_tokenizer.json", "model.safetensors"]
    config = json.loads((tmp_path / "tok" / "actok_tokenizer.json").read_text())
    assert config["state"]["training_summary"]["train_rmse"] > 0
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.encode(pusht_chunks.holdout) == rvq.encode(pusht_chunks.holdout)
    (tmp_path / "tok" / "model.safetensors").unlink()
    with pytest.raises(ActokError, match=r"model\.safetensors is missing"):
        load_tokenizer(tmp_path / "tok")


def test_diagnostics(rvq, pusht_chunks):
    x = pusht_chunks.holdout
    m = rvq.diagnostics(x, rvq.encode(x))
    assert len(m["codebook_utilization"]) == 3 and all(0 < u <= 1 for u in m["codebook_utilization"])
    assert all(1 <= p <= 32 for p in m["codebook_perplexity"])
    assert m["dead_codes"] == [round(32 * (1 - u)) for u in m["codebook_utilization"]]
    assert 1 <= m["distinct_code_combinations"] <= len(x)
    assert m["train_rmse"] == rvq.training_summary["train_rmse"] > 0
    assert not any("error" in key or key.startswith("heldout") for key in m)  # errors are bench's, not the hook's


def test_bench_reports_the_train_gap_from_the_diagnostics(rvq, pusht_chunks):
    metrics = benchmark_tokenizer(rvq, pusht_chunks, max_chunks=50, timing_repeats=1)
    assert metrics["heldout_to_train_rmse_ratio"] == pytest.approx(
        metrics["reconstruction_rmse"] / rvq.training_summary["train_rmse"]
    )
    assert metrics["max_abs_error_vs_binning_bound"] == pytest.approx(metrics["reconstruction_max_abs_error"] * 256)
    assert len(metrics["codebook_utilization"]) == 3 and metrics["stopped_by"] == rvq.training_summary["stopped_by"]


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(
        ActokError,
        match=r"fsq parameter levels must be a list of 1 to 16 values, each an integer in \[2, 32768\], got \[8, 1\]",
    ):
        create_tokenizer("fsq", levels=[8, 1])
    with pytest.raises(ActokError, match="naming a device: auto, cpu, cuda, cuda:N or mps, got 'tpu'"):
        create_tokenizer("rvq", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ActokError, match="CUDA is not available"):
            create_tokenizer("rvq", device="cuda")
    with pytest.raises(ActokError, match=r"vqvae parameter max_epochs must be an integer in \[1, 100000\], got 0"):
        create_tokenizer("vqvae", max_epochs=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vqvae", "rvq", "fsq"])
def test_train_and_bench_from_the_cli(name, tmp_path, capsys):
    root = str(dataset_root("pusht"))
    out = tmp_path / name
    args = ["--root", root, "--tokenizer", name, "--tokenizer-param", "max_epochs=4", "--device", "auto"]
    assert cli_main(["train", *args, "--output-dir", str(out), "--tokenizer-param", "progress=false"]) == 0
    printed = capsys.readouterr().out
    assert "Early stopping on the" in printed and (out / "model.safetensors").is_file()
    assert (
        cli_main(["bench", "--root", root, "--action-tokenizer-path", str(out), "--output-dir", str(tmp_path / "b")])
        == 0
    )
    result = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    metrics = result["metrics"]
    for key in (
        "codebook_utilization",
        "codebook_perplexity",
        "dead_codes",
        "distinct_code_combinations",
        "heldout_to_train_rmse_ratio",
        "max_abs_error_vs_binning_bound",
    ):
        assert key in metrics, key
    assert result["config"]["tokenizer"] == name


def test_core_works_without_torch(tmp_path):
    """Hide torch: the core imports and runs, and a learned tokenizer names the extra to install."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, actok\n"
        "from actok import create_tokenizer\n"
        "tok = create_tokenizer('binning').fit(np.zeros((2, 4, 1)))\n"
        "assert tok.encode(np.zeros((1, 4, 1)))\n"
        "try:\n    create_tokenizer('rvq')\nexcept actok.ActokError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs the learned extra" in out and "pip install 'actok[learned]'" in out


@pytest.mark.parametrize(
    ("hidden", "names"),
    [
        ("vector_quantize_pytorch", ("rvq", "fsq")),  # vqvae implements its quantizer itself
        ("loguru", ("rvq", "fsq", "vqvae")),
        ("safetensors", ("rvq", "fsq", "vqvae")),
    ],
)
@pytest.mark.slow
def test_a_missing_learned_dependency_names_the_extra_with_torch_present(hidden, names):
    """torch installed but another piece of the learned extra missing: the CLI says which extra to install, in one
    line, for every learned tokenizer."""
    code = (
        f"import sys; sys.modules[{hidden!r}] = None\n"
        "from actok.cli import main\n"
        f"for name in {names!r}:\n"
        "    assert main(['bench', '--tokenizer', name]) == 2\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(names) and "Traceback" not in proc.stderr, proc.stderr
    assert all("needs the learned extra" in ln and hidden in ln for ln in lines), lines
