"""Wavelet tokenizer: a discrete wavelet transform per dimension (PyWavelets) composed with FAST's coefficient
codec.

`wavedec` with periodization (an orthogonal transform for orthogonal wavelets, so the rounding error in the
coefficients is the reconstruction error), coefficients ordered coarse to fine and scaled by `scale`, rounded,
then the same byte-level BPE as FAST, with FAST's encode rules (`clip`) and validity checks
(`actok.tokenizers.coefficients`). A wavelet folder is an actok folder (the Hub FAST processor only knows the DCT).
"""

from __future__ import annotations

import warnings
from typing import Annotated

import numpy as np
import pywt
from annotated_types import Interval

from actok.tokenizers.base import flatten_rows
from actok.tokenizers.coefficients import CoefficientTokenizer
from actok.tokenizers.params import OneOf, Scale, VocabSize

MODE = "periodization"


class DWT:
    """`pywt.wavedec` over time, per dimension: chunks `[N, H, D]` <-> coefficients `[N, C·D]`, coarse to fine."""

    name = "wavelet"

    def __init__(self, wavelet: str, level: int):
        self.wavelet, self.level = wavelet, level

    def _decompose(self, chunks: np.ndarray) -> list[np.ndarray]:
        with warnings.catch_warnings():  # "level too high: boundary effects" does not apply to periodization
            warnings.simplefilter("ignore", UserWarning)
            return pywt.wavedec(chunks, self.wavelet, mode=MODE, level=self.level, axis=1)

    def __call__(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        return flatten_rows(np.concatenate(self._decompose(chunks), axis=1))

    def _sizes(self, horizon: int) -> list[int]:
        """Coefficients per dimension in each band, coarse to fine."""
        return [c.shape[1] for c in self._decompose(np.zeros((1, horizon, 1)))]

    def n_coefficients(self, horizon: int) -> int:
        return sum(self._sizes(horizon))

    def inverse(self, coeff: np.ndarray, horizon: int, action_dim: int, workers: int | None = None) -> np.ndarray:
        bands = coeff.reshape(len(coeff), coeff.shape[1] // action_dim, action_dim)
        parts = np.split(bands, np.cumsum(self._sizes(horizon))[:-1], axis=1)
        return pywt.waverec(parts, self.wavelet, mode=MODE, axis=1)[:, :horizon]


class WaveletTokenizer(CoefficientTokenizer):
    """DWT + BPE.

    Args:
        wavelet: a PyWavelets discrete wavelet name (`pywt.wavelist(kind="discrete")`), e.g. haar, db2, db4, sym4.
        level: decomposition levels (>= 1; deeper levels concentrate smooth chunks in fewer coefficients).
        scale: multiplier applied to the coefficients before rounding.
        vocab_size: BPE vocabulary size.
        clip: clip coefficients into the fitted range (see FASTTokenizer).
    """

    name = "wavelet"

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
        self.transform = DWT(wavelet, self.level)
