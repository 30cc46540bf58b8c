"""FAST: DCT over time, scaled and rounded coefficients, byte-level BPE (REFERENCES §3).

`fit` builds the reference processor's BPE with the same library calls, and `encode` gives the reference's ids, id
for id, on every input the reference can encode, also far outside the fitted range:
- the DCT runs in the input's float dtype (float32 chunks round as the reference rounds them);
- a coefficient below the fitted `min_token` is clamped to it; one above `max_token` becomes a code point beyond
  the fitted alphabet, which the byte-level BPE spells with byte tokens (lossless, just longer);
- where the vocabulary has no symbol for such a code point's bytes, the reference silently drops them and so does
  `encode` (same ids), with an `ActokWarning`: that sequence cannot decode;
- where the reference cannot encode at all (a code point in U+D800-DFFF makes its tokenizer call raise TypeError,
  openpi #333; one beyond U+10FFFF makes `chr` raise), `encode` clips that coefficient as `clip=True` does.
`clip=True` clips every coefficient into the fitted range onto a symbol the BPE spells (bounded lengths, every
sequence decodes; other ids than the reference's for out-of-range chunks). `count_clipped` counts the coefficients
`clip=True` moves, whatever `clip` is.

`decode` accepts every sequence the reference decodes to a chunk of the right shape (code points beyond the fitted
range included) and marks invalid exactly the others: ids outside the vocabulary, bytes that are not UTF-8 (the
reference decodes them to U+FFFD and reads a coefficient near 65,533 from it, garbage), and a number of symbols
other than H*D (the reference prints an error and returns zeros). The `on_invalid` policy applies to those.
FAST is the DCT (`DCT`) composed with the coefficient codec these rules live in (`coefficients.ByteLevelCodec`,
shared with `wavelet`). Encode and decode run in compiled loops (`_bytelevel_bpe`) that give the library's results
exactly; without numba, or for a tokenizer file those loops do not cover, the same steps go through the library
and numpy. This module adds the Hub folder: `save` writes it, `load` reads it (also LeRobot's and FAST+'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer

from actok.errors import ActokError
from actok.tokenizers import _fast_kernels as kernels
from actok.tokenizers.base import CONFIG_FIELDS, CONFIG_FILE, PositiveInt, flatten_rows
from actok.tokenizers.coefficients import CoefficientTokenizer, check_range, read_byte_level_bpe
from actok.tokenizers.hub import BPE_SUBFOLDER, PROCESSOR_CONFIG, TOKENIZER_FILE, write_processor_files
from actok.tokenizers.params import Scale, VocabSize, check_fields, read_json_object

PROCESSOR_MODULE = "processing_action_tokenizer.py"


class DCT:
    """The DCT-II over time (orthonormal), per dimension: chunks `[N, H, D]` <-> coefficients `[N, H·D]`,
    frequency-major, in the chunks' dtype; `workers`: threads (default: `ACTOK_NUM_THREADS` or the usable cores)."""

    name = "DCT"

    def __call__(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        return flatten_rows(dct(chunks, axis=1, norm="ortho", workers=workers or kernels.num_threads()))

    def inverse(self, coeff: np.ndarray, horizon: int, action_dim: int, workers: int | None = None) -> np.ndarray:
        return idct(
            coeff.reshape(len(coeff), horizon, action_dim),
            axis=1,
            norm="ortho",
            workers=workers or kernels.num_threads(),
            overwrite_x=True,
        )

    def n_coefficients(self, horizon: int) -> int:
        return horizon


class FASTTokenizer(CoefficientTokenizer):
    """DCT + BPE action tokenizer, id-for-id the reference processor (see the module docstring).

    Args:
        scale: multiplier applied to DCT coefficients before rounding (larger = finer, more tokens).
        vocab_size: BPE vocabulary size; must be at least the coefficient range seen in `fit`.
        clip: clip coefficients into the fitted range (bounded sequence lengths, every sequence decodes) instead of
            the reference's byte tokens beyond it.
    """

    name = "fast"

    def __init__(self, scale: Scale = 10.0, vocab_size: VocabSize = 1024, clip: bool = False):
        super().__init__(scale=scale, vocab_size=vocab_size, clip=clip)
        self.transform = DCT()

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        """The actok files (tokenizer.json and the state), and the Hub files every FAST consumer reads."""
        state = super()._save_state(directory)
        fields = {
            "action_dim": self.action_dim,
            "clip": self.clip,
            "max_token": self.max_token,
            "min_token": self.min_token,
            "scale": self.scale,
            "time_horizon": self.horizon,
            "vocab_size": self._vocab_size,
        }
        write_processor_files(directory, self.bpe, PROCESSOR_MODULE, "UniversalActionProcessor", fields)
        return state

    @classmethod
    def load(cls, directory: str | Path) -> FASTTokenizer:
        """Read a FAST folder: processor_config.json and the BPE file (what every FAST consumer reads), and, in a
        folder actok wrote, actok_tokenizer.json, which must agree with them."""
        path = Path(directory)
        tok = load_fast_folder(path)
        if (path / CONFIG_FILE).is_file():
            _check_agrees(tok, path / CONFIG_FILE)
        return tok


# ------------------------------------------------------------------ folder files
# processor_config.json: what the reference processor reads (null or absent where LeRobot or FAST+ leave it out).
PROCESSOR_FIELDS = {
    "scale": Scale,
    "min_token": int,
    "max_token": int | None,
    "vocab_size": PositiveInt | None,
    "time_horizon": PositiveInt | None,
    "action_dim": PositiveInt | None,
    "clip": bool,
}


def alphabet_end(bpe: Tokenizer) -> int:
    """The last code point i with chr(0) .. chr(i) all single-character tokens: the reference's initial alphabet
    is chr(0 .. max_token - min_token), so this recovers max_token - min_token for a folder that does not record
    it (a byte symbol right after the alphabet can make it a few code points larger, never smaller)."""
    vocab = bpe.get_vocab()
    end = 0
    while chr(end) in vocab:
        end += 1
    return end - 1


def load_fast_folder(path: Path) -> FASTTokenizer:
    """Load a FAST folder in the flat Hub layout or the transformers-5 layout (`bpe_tokenizer/` subfolder),
    including folders actok did not write (LeRobot's, without max_token; the universal FAST+ tokenizer with null
    time_horizon/action_dim). Every field is checked; a bad one raises `ActokError` naming the file."""
    config_path = path / PROCESSOR_CONFIG
    if not config_path.is_file():
        raise ActokError(f"{path} is not a FAST tokenizer folder: the file {PROCESSOR_CONFIG} is missing")
    candidates = [path / TOKENIZER_FILE, path / BPE_SUBFOLDER / TOKENIZER_FILE]
    bpe_file = next((p for p in candidates if p.is_file()), None)
    if bpe_file is None:
        raise ActokError(
            f"{path} is not a FAST tokenizer folder: the file {TOKENIZER_FILE} is missing (looked in {path} and {path / BPE_SUBFOLDER})"
        )
    config = check_fields(config_path, {"clip": False, **read_json_object(config_path)}, PROCESSOR_FIELDS)
    bpe = read_byte_level_bpe(bpe_file)
    min_token, max_token = config["min_token"], config["max_token"]
    if max_token is None:
        max_token = min_token + alphabet_end(bpe)
    check_range(config_path, min_token, max_token)
    try:
        tok = FASTTokenizer(
            scale=config["scale"], vocab_size=config["vocab_size"] or bpe.get_vocab_size(), clip=config["clip"]
        )
    except ActokError as err:
        raise ActokError(f"{config_path}: {err}") from None
    tok.bpe, tok.min_token, tok.max_token = bpe, min_token, max_token
    tok.horizon, tok.action_dim = config["time_horizon"], config["action_dim"]
    try:
        tok._prepare()
    except ActokError as err:
        raise ActokError(f"{bpe_file}: {err}") from None
    return tok


def _check_agrees(tok: FASTTokenizer, path: Path) -> None:
    """actok_tokenizer.json of a FAST folder: well-formed, and saying what processor_config.json says (the file
    every FAST consumer reads); a disagreement means one was edited, and neither may silently win."""
    config = read_json_object(path)
    if config.get("tokenizer") != tok.name:
        raise ActokError(f"{path} names the tokenizer {config.get('tokenizer')!r}, not {tok.name!r}")
    config = check_fields(path, config, CONFIG_FIELDS)
    unknown = sorted(set(config["params"]) - set(tok.get_params()))
    if unknown:
        raise ActokError(f"{path}: unknown FAST parameter {unknown[0]!r}; valid: {', '.join(tok.get_params())}")
    params = check_fields(
        path, {"clip": False, **config["params"]}, {"scale": Scale, "vocab_size": VocabSize, "clip": bool}
    )
    state = {"min_token": tok.min_token, "max_token": tok.max_token, **config["state"]}
    state = check_fields(path, state, {"min_token": int, "max_token": int})
    saved = {**params, "time_horizon": config["horizon"], "action_dim": config["action_dim"], **state}
    if config["vocab_size"] != tok.vocab_size:
        raise ActokError(f"{path}: vocab_size {config['vocab_size']!r} is not the tokenizer's {tok.vocab_size}")
    loaded = {
        "scale": tok.scale,
        "vocab_size": tok._vocab_size,
        "clip": tok.clip,
        "time_horizon": tok.horizon,
        "action_dim": tok.action_dim,
        "min_token": tok.min_token,
        "max_token": tok.max_token,
    }
    for key, value in saved.items():
        if value != loaded[key]:
            raise ActokError(
                f"{path} and {PROCESSOR_CONFIG} disagree on {key} ({value!r} vs {loaded[key]!r}): one of them was "
                "edited; make them agree"
            )
