"""Wavelet tokenizer: FAST with the DCT replaced by a discrete wavelet transform per dimension (PyWavelets).

`wavedec` with periodization (an orthogonal transform for orthogonal wavelets, so the rounding error in the
coefficients is the reconstruction error), coefficients ordered coarse to fine and scaled by `scale`, rounded,
then the same byte-level BPE as FAST, with FAST's encode rules (`clip`) and validity checks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pywt
from annotated_types import Interval

from actok.errors import ActokError
from actok.tokenizers.base import CONFIG_FILE, flatten_rows
from actok.tokenizers.fast import SURROGATES, TOKENIZER_FILE, FASTTokenizer, config_field, read_bpe
from actok.tokenizers.params import OneOf, Scale, VocabSize

MODE = "periodization"


class WaveletTokenizer(FASTTokenizer):
    """DWT + BPE.

    Args:
        wavelet: a PyWavelets discrete wavelet name (`pywt.wavelist(kind="discrete")`), e.g. haar, db2, db4, sym4.
        level: decomposition levels (>= 1; deeper levels concentrate smooth chunks in fewer coefficients).
        scale: multiplier applied to the coefficients before rounding.
        vocab_size: BPE vocabulary size.
        clip: clip coefficients into the fitted range (see FASTTokenizer).
    """

    name = "wavelet"
    conformance_rmse_bound = 0.05
    transform_name = "wavelet"

    def __init__(
        self,
        wavelet: Annotated[str, OneOf(tuple(pywt.wavelist(kind="discrete")))] = "db2",
        level: Annotated[int, Interval(ge=1, le=16)] = 2,
        scale: Scale = 10.0,
        vocab_size: VocabSize = 1024,
        clip: bool = False,
    ):
        super().__init__(scale=scale, vocab_size=vocab_size, clip=clip)
        self.wavelet, self.level = wavelet, int(level)

    def get_params(self) -> dict[str, Any]:
        return {"wavelet": self.wavelet, "level": self.level, **super().get_params()}

    def _decompose(self, chunks: np.ndarray) -> list[np.ndarray]:
        with warnings.catch_warnings():  # "level too high: boundary effects" does not apply to periodization
            warnings.simplefilter("ignore", UserWarning)
            return pywt.wavedec(chunks, self.wavelet, mode=MODE, level=self.level, axis=1)

    def transform(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        return flatten_rows(np.concatenate(self._decompose(chunks), axis=1))

    def n_coefficients(self, horizon: int) -> int:
        return sum(c.shape[1] for c in self._decompose(np.zeros((1, horizon, 1))))

    def inverse_transform(
        self, coeff: np.ndarray, horizon: int, action_dim: int, workers: int | None = None
    ) -> np.ndarray:
        sizes = [c.shape[1] for c in self._decompose(np.zeros((1, horizon, 1)))]
        parts = np.split(
            coeff.reshape(len(coeff), coeff.shape[1] // action_dim, action_dim), np.cumsum(sizes)[:-1], axis=1
        )
        return pywt.waverec(parts, self.wavelet, mode=MODE, axis=1)[:, :horizon]

    # A wavelet folder is an actok folder (the Hub FAST processor only knows the DCT).
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_bpe()
        self.bpe.save(str(directory / TOKENIZER_FILE))
        return {"min_token": self.min_token, "max_token": self.max_token}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise ActokError(f"{directory} is not a complete wavelet tokenizer: the file {TOKENIZER_FILE} is missing")
        config = directory / CONFIG_FILE
        if not isinstance(state, dict):
            raise ActokError(f"{config}: 'state' must be a JSON object, got {state!r}")
        lo = config_field(state, config, "min_token", "an integer")
        hi = config_field(state, config, "max_token", "an integer")
        if not 0 <= hi - lo < SURROGATES:
            raise ActokError(
                f"{config}: max_token {hi} must be in [min_token, min_token + {SURROGATES - 1}] (min_token is {lo})"
            )
        self.bpe, self.min_token, self.max_token = read_bpe(path), lo, hi
        try:
            self._prepare()
        except ActokError as err:
            raise ActokError(f"{path}: {err}") from None

    @classmethod
    def load(cls, directory: str | Path) -> WaveletTokenizer:
        return super(FASTTokenizer, cls).load(directory)  # the generic actok loader, not FAST's Hub-folder one
