"""Loading saved folders: every corrupted or mismatched file is one ActokError naming the file, never a library
traceback, and no file is left open. Folders are fitted on generated chunks (the files matter, not the fit)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from actok import ActionCodec, available_tokenizers, create_tokenizer, get_tokenizer_class, load_tokenizer
from actok.cli import main as cli_main
from actok.codec import PIPELINE_FILE
from actok.errors import ActokError
from actok.tokenizers import tokenizer_extra
from actok.tokenizers.base import CONFIG_FILE

TINY = {
    "vqvae": {"codebook_size": 16, "code_dim": 4, "chunk_size": 5},
    "rvq": {"n_layers": 2, "codebook_size": 16, "latent_dim": 4},
    "fsq": {"levels": [3, 3], "chunk_size": 5},
}
LEARNED_TRAINING = {"max_epochs": 1, "hidden_dim": 16, "progress": False}
# Tokenizers loaded through the generic loader; FAST reads its Hub files (processor_config.json, tokenizer.json),
# whose corruptions test_fast.py covers.
GENERIC = [name for name in available_tokenizers() if name != "fast"]


def chunks(n: int = 120) -> np.ndarray:
    """Smooth random chunks `[n, 10, 2]` in [-1, 1]."""
    return np.cumsum(np.random.default_rng(0).normal(size=(n, 10, 2)) * 0.1, axis=1).clip(-1, 1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One saved folder per registered tokenizer."""
    root = tmp_path_factory.mktemp("saved")
    out = {}
    for name in available_tokenizers():
        if tokenizer_extra(name):
            pytest.importorskip("torch")
        params = {**TINY[name], **LEARNED_TRAINING} if name in TINY else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one epoch stops at max_epochs
            out[name] = create_tokenizer(name, **params).fit(chunks()).save(root / name)
    return out


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of a saved folder (to corrupt)."""
    copies = iter(range(1000))

    def _copy(name: str) -> Path:
        return Path(shutil.copytree(saved[name], tmp_path / f"{name}-{next(copies)}"))

    return _copy


def edit_config(folder: Path, change) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    change(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def refused(load, folder: Path, match: str | None, file: str | None = CONFIG_FILE) -> str:
    """`load(folder)` raises one ActokError matching `match` and naming `file` (in `folder`)."""
    with pytest.raises(ActokError, match=match) as info:
        load(folder)
    message = str(info.value)
    assert "\n" not in message
    if file is not None:
        assert str(folder / file) in message, message
    return message


CONFIG_CORRUPTIONS = {
    "not JSON": (lambda p: p.write_text('{"tokenizer": '), "is not valid JSON"),
    "not text": (lambda p: p.write_bytes(b"\xff\xfe\x00"), "is not a text file"),
    "not an object": (lambda p: p.write_text("[1, 2]"), "must hold a JSON object, not a JSON array"),
    "a folder": (lambda p: (p.unlink(), p.mkdir()), "cannot be read"),
}
FIELD_CORRUPTIONS = {
    "missing params": (lambda c: c.pop("params"), "lacks the field 'params'"),
    "horizon as text": (lambda c: c.update(horizon="10"), "horizon must be an integer in \\[1, 16777216\\], got '10'"),
    "fractional action_dim": (
        lambda c: c.update(action_dim=2.5),
        "action_dim must be an integer in \\[1, 16777216\\], got 2.5",
    ),
    "params a list": (lambda c: c.update(params=[]), r"params must be an object, got \[\]"),
    "state null": (lambda c: c.update(state=None), "state must be an object, got None"),
    "unknown tokenizer": (lambda c: c.update(tokenizer="nope"), "names the unknown tokenizer 'nope'; valid tokenizers"),
    "tokenizer a number": (lambda c: c.update(tokenizer=3), "tokenizer must be a string, got 3"),
}


@pytest.mark.parametrize("corruption", CONFIG_CORRUPTIONS)
@pytest.mark.parametrize("name", available_tokenizers())
def test_corrupted_config_file(copy, name, corruption):
    folder = copy(name)
    corrupt, match = CONFIG_CORRUPTIONS[corruption]
    corrupt(folder / CONFIG_FILE)
    refused(load_tokenizer, folder, match)


@pytest.mark.parametrize("corruption", FIELD_CORRUPTIONS)
@pytest.mark.parametrize("name", available_tokenizers())
def test_missing_or_wrong_typed_config_field(copy, name, corruption):
    folder = copy(name)
    change, match = FIELD_CORRUPTIONS[corruption]
    edit_config(folder, change)
    refused(load_tokenizer, folder, match)


@pytest.mark.parametrize("name", GENERIC)
def test_bad_parameter_or_vocab_size_in_config(copy, name):
    folder = copy(name)
    first = next(iter(json.loads((folder / CONFIG_FILE).read_text())["params"]))
    edit_config(folder, lambda c: c["params"].update({first: "x"}))
    refused(load_tokenizer, folder, f"{name} parameter {first} must be .*, got 'x'")
    folder = copy(name)
    edit_config(folder, lambda c: c.update(vocab_size=c["vocab_size"] + 1))
    refused(load_tokenizer, folder, "records vocab_size")


@pytest.mark.parametrize("name", available_tokenizers())
def test_a_class_refuses_the_folder_of_another_tokenizer(saved, name):
    other = "klt" if name == "binning" else "binning"
    message = refused(get_tokenizer_class(name).load, saved[other], None, file=None)
    if name != "fast":  # FAST looks for its Hub files
        assert f"holds a '{other}' tokenizer, not '{name}'" in message and "load_tokenizer" in message


STATE_CORRUPTIONS = {
    "quantile-binning": [
        (lambda s: s.update(edges=s["edges"][:-1]), "state.edges must be a 255 x 2 array of finite numbers"),
        (lambda s: s.update(values=[[None, 1.0]] * 256), "state.values must be a 256 x 2 array"),
        (lambda s: s.update(edges=s["edges"][::-1]), "state.edges are not sorted"),
        (lambda s: s.pop("edges"), "lacks the state field 'edges'"),
    ],
    "bspline": [
        (lambda s: s.update(low="x"), "state.low must be a 5 x 2 array"),
        (lambda s: s.pop("high"), "lacks the state field 'high'"),
    ],
    "klt": [
        (lambda s: s.update(half_width="a"), r"half_width must be an integer in \[1, 32768\], got 'a'"),
        (lambda s: s.update(max_carry=5000), "max_carry 5000 give 10[0-9]+ symbols, more than vocab_size"),
        (lambda s: s.update(basis="../elsewhere.npz"), "basis must be 'klt_basis.npz'"),
    ],
    "vqvae": [
        (lambda s: s.update(weights=5), "weights must be 'model.safetensors', got 5"),
        (lambda s: s.update(training_summary=[]), "training_summary must be an object"),
    ],
}


@pytest.mark.parametrize(
    ("name", "k"), [(name, k) for name, cases in STATE_CORRUPTIONS.items() for k in range(len(cases))]
)
def test_state_that_does_not_fit_the_parameters(copy, name, k):
    folder = copy(name)
    change, match = STATE_CORRUPTIONS[name][k]
    edit_config(folder, lambda c: change(c["state"]))
    refused(load_tokenizer, folder, match)


KLT_FILES = {
    "garbage basis": ("klt_basis.npz", b"garbage", "is not an .npz archive"),
    "truncated basis": ("klt_basis.npz", "truncate", "is not an .npz archive"),
    "garbage BPE": ("tokenizer.json", b"{", "is not a readable BPE tokenizer file"),
}


@pytest.mark.parametrize("case", KLT_FILES)
def test_corrupted_klt_files(copy, case):
    folder = copy("klt")
    file, content, match = KLT_FILES[case]
    path = folder / file
    path.write_bytes(path.read_bytes()[:300] if content == "truncate" else content)
    refused(load_tokenizer, folder, match, file=file)


def test_klt_files_that_do_not_fit_the_state(copy, saved):
    folder = copy("klt")
    with np.load(folder / "klt_basis.npz") as data:
        arrays = {k: data[k] for k in data.files}

    def refused_with(match, **changes):
        np.savez(folder / "klt_basis.npz", **{k: v for k, v in {**arrays, **changes}.items() if v is not None})
        refused(load_tokenizer, folder, match, file="klt_basis.npz")

    refused_with("lacks the array 'basis'", basis=None)
    refused_with(
        r"holds a mean of float64 \(5,\); the tokenizer's shape needs float arrays mean \(20,\)",
        mean=arrays["mean"][:5],
    )
    refused_with("does not hold an orthonormal basis", basis=arrays["basis"] * 2)
    refused_with("holds values that are not finite", value_low=np.full(2, np.nan))
    refused_with("holds a value range whose low exceeds its high", value_low=arrays["value_high"] + 1)
    np.savez(folder / "klt_basis.npz", **arrays)
    shutil.copy(saved["wavelet"] / "tokenizer.json", folder / "tokenizer.json")  # a byte-level BPE: other symbols
    refused(load_tokenizer, folder, "is not the BPE fit builds for the klt state", file="tokenizer.json")
    (folder / "tokenizer.json").unlink()
    refused(load_tokenizer, folder, r"the file tokenizer\.json is missing", file=None)


def test_corrupted_wavelet_bpe(copy):
    folder = copy("wavelet")
    (folder / "tokenizer.json").write_text("[]")
    refused(load_tokenizer, folder, "is not a readable BPE tokenizer file", file=None)


@pytest.mark.parametrize("name", list(TINY))
def test_weights_that_do_not_fit(copy, name):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    folder = copy(name)
    weights = folder / "model.safetensors"
    intact = weights.read_bytes()
    for content, match in ((b"garbage", "is not a readable safetensors file"), (intact[:200], "is not a readable")):
        weights.write_bytes(content)
        refused(load_tokenizer, folder, match, file="model.safetensors")
    weights.write_bytes(intact)
    tensors = load_file(str(weights))
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    save_file({**tensors, key: torch.full_like(tensors[key], float("nan"))}, str(weights))
    refused(load_tokenizer, folder, "holds non-finite weights", file="model.safetensors")
    save_file({k: v for k, v in tensors.items() if k != key}, str(weights))
    refused(
        load_tokenizer,
        folder,
        f"does not hold the weights of the {name} model .*missing {key}",
        file="model.safetensors",
    )
    weights.write_bytes(intact)
    edit_config(folder, lambda c: c["params"].update(hidden_dim=32))  # another architecture than the weights
    refused(load_tokenizer, folder, "wrong shape", file="model.safetensors")


def test_chunk_size_that_does_not_divide_the_recorded_horizon(copy):
    folder = copy("vqvae")
    edit_config(folder, lambda c: c["params"].update(chunk_size=3))
    refused(load_tokenizer, folder, "chunk_size 3 does not divide the horizon 10")


# ------------------------------------------------------------------ pipeline.json and ActionCodec.load
def pipeline(**changes) -> dict:
    """A pipeline dict as ChunkSet.pipeline_dict writes it: horizon 10, encoded dims 0 and 1 of 3."""
    return {
        "action_horizon": 10,
        "action_dim": 3,
        "encoded_dims": "0:2",
        "encoded_dim_list": [0, 1],
        "use_delta_transform": True,
        "delta_dims": "1",
        "state_key": "observation.state",
        "normalization": {"mode": "MIN_MAX", "stats": {"min": [-2.0, -1.0], "max": [2.0, 1.0]}},
        "stats_source": "generated",
        **changes,
    }


@pytest.fixture
def codec_folder(saved, tmp_path) -> Path:
    folder = ActionCodec(load_tokenizer(saved["binning"]), pipeline()).save(tmp_path / "codec")
    assert ActionCodec.load(folder).pipeline == pipeline()
    return folder


PIPELINE_CORRUPTIONS = {
    "not JSON": ("{", "is not valid JSON"),
    "not an object": ("3", "must hold a JSON object, not a JSON number"),
    "missing normalization": ({k: v for k, v in pipeline().items() if k != "normalization"}, "lacks the field"),
    "normalization null": (pipeline(normalization=None), "normalization must be an object, got None"),
    "dims as text": (pipeline(encoded_dim_list="0,1"), "encoded_dim_list must be a list of 1 or more values"),
    "negative dim": (pipeline(encoded_dim_list=[0, -1]), "encoded_dim_list must be a list"),
    "dims outside the action": (pipeline(encoded_dim_list=[0, 3]), "has dims outside action_dim 3"),
    "delta dims a number": (pipeline(delta_dims=5), "delta_dims must be a string of comma-separated dims or null"),
    "delta dims not numbers": (pipeline(delta_dims="a,b"), "delta_dims must be"),
    "horizon null": (pipeline(action_horizon=None), "action_horizon must be an integer >= 1, got None"),
    "unknown mode": (pipeline(normalization={"mode": "ZSCORE", "stats": {}}), "unknown normalization mode 'ZSCORE'"),
    "mode a number": (pipeline(normalization={"mode": 1, "stats": {}}), "normalization: mode must be a string"),
    "missing stat": (pipeline(normalization={"mode": "MIN_MAX", "stats": {"min": [0, 0]}}), "stats max must be a list"),
    "short stat": (
        pipeline(normalization={"mode": "MIN_MAX", "stats": {"min": [0], "max": [1, 1]}}),
        "stats min must be a list of exactly 2 values",
    ),
    "non-finite stat": (
        pipeline(normalization={"mode": "MIN_MAX", "stats": {"min": [0, float("nan")], "max": [1, 1]}}),
        "stats min must be",
    ),
    "min above max": (
        pipeline(normalization={"mode": "MIN_MAX", "stats": {"min": [0, 2], "max": [1, 1]}}),
        r"stats min exceed max in dims \[1\]",
    ),
    "overflowing range": (
        pipeline(normalization={"mode": "MIN_MAX", "stats": {"min": [0, -1e308], "max": [1, 1e308]}}),
        "stats max - min overflow",
    ),
    "another horizon": (pipeline(action_horizon=5), r"chunks \[H=5, D=2\] but the binning tokenizer was fitted on"),
}


@pytest.mark.parametrize("case", PIPELINE_CORRUPTIONS)
def test_corrupted_pipeline_file(codec_folder, case):
    content, match = PIPELINE_CORRUPTIONS[case]
    (codec_folder / PIPELINE_FILE).write_text(content if isinstance(content, str) else json.dumps(content))
    refused(ActionCodec.load, codec_folder, match, file=PIPELINE_FILE)


def test_codec_needs_its_pipeline_and_a_fitting_state(codec_folder):
    codec = ActionCodec.load(codec_folder)
    ids = codec.encode(np.zeros((4, 10, 3)), state=np.zeros((4, 3)))
    with pytest.raises(ActokError, match=r"state must be finite numbers \[N=4, state_dim > 1\].*got shape \(4, 1\)"):
        codec.decode(ids, state=np.zeros((4, 1)))
    with pytest.raises(ActokError, match=r"\[N=4, state_dim > 1\].*got str"):
        codec.decode(ids, state="abc")
    with pytest.raises(ActokError, match="pipeline must be a dict"):
        ActionCodec(codec.tokenizer, None)
    (codec_folder / PIPELINE_FILE).unlink()
    refused(ActionCodec.load, codec_folder, "has no pipeline.json", file=None)


def test_bench_with_a_corrupted_pipeline_is_one_line(codec_folder, capsys):
    (codec_folder / PIPELINE_FILE).write_text('{"action_horizon": ')
    assert cli_main(["bench", "--action-tokenizer-path", str(codec_folder)]) == 2
    err = capsys.readouterr().err
    assert "pipeline.json is not valid JSON" in err and err.count("\n") == 1


# ------------------------------------------------------------------ no file left open
@pytest.mark.slow
def test_loading_leaves_no_file_open(saved, tmp_path):
    """Loading every saved folder and corrupted ones, with ResourceWarning as an error (an unclosed file is
    reported at garbage collection, so stderr is checked too)."""
    broken = tmp_path / "broken"
    corruptions = [
        ("klt", "klt_basis.npz", b"PK\x03\x04 not a zip"),
        ("klt", "klt_basis.npz", (saved["klt"] / "klt_basis.npz").read_bytes()[:300]),
        ("vqvae", "model.safetensors", b"garbage"),
        ("binning", CONFIG_FILE, b"{"),
        ("wavelet", "tokenizer.json", b"{"),
    ]
    for k, (name, file, content) in enumerate(corruptions):
        folder = Path(shutil.copytree(saved[name], broken / f"{k}-{name}"))
        (folder / file).write_bytes(content)
    code = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from actok import ActokError, load_tokenizer\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        load_tokenizer(folder)\n"
        "    except ActokError as exc:\n"
        "        print(exc)\n"
        "gc.collect()\n"
    )
    folders = [str(p) for p in saved.values()] + [str(p) for p in sorted(broken.iterdir())]
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code, *folders],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" not in result.stderr and "unclosed" not in result.stderr, result.stderr
    assert result.stdout.count("\n") == len(corruptions)  # each broken folder: one ActokError line


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(continuing_subword_prefix="x"),  # made the library panic in a destructor (abort)
        lambda m: m["vocab"].pop(max(m["vocab"], key=m["vocab"].get)),  # a merged token missing: a PanicException
        lambda m: m["vocab"].update({"\x01": 0}),  # two tokens with one id: an IndexError in the decode tables
        lambda m: m.update(merges=[["a"]]),
        lambda m: m.update(vocab={"a": True}),
    ],
    ids=["subword prefix", "merged token missing", "duplicate id", "bad merge", "boolean id"],
)
@pytest.mark.parametrize("name", ["fast", "wavelet", "klt"])
def test_malformed_bpe_models_are_refused_before_the_library_sees_them(name, edit, saved, tmp_path):
    """Run in a child process: a native abort must not take the test run down with it."""
    folder = tmp_path / name
    shutil.copytree(saved[name], folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    edit(spec["model"])
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    code = (
        f"import actok\ntry:\n    actok.load_tokenizer({str(folder)!r})\nexcept actok.ActokError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "tokenizer.json is not a readable BPE tokenizer file" in proc.stdout


def test_a_state_whose_width_overflows_and_absurd_shapes_are_refused(saved, tmp_path):
    folder = tmp_path / "bs"
    shutil.copytree(saved["bspline"], folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["state"]["low"][0][0], config["state"]["high"][0][0] = -1e308, 1e308  # finite, but its width is not
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ActokError, match=r"high - low must be finite"):
        load_tokenizer(folder)
    config["horizon"] = 10**40
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ActokError, match="horizon"):
        load_tokenizer(folder)
    with pytest.raises(ActokError, match="takes a folder path"):
        load_tokenizer(None)
