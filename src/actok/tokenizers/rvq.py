"""`rvq`: VQ-BeT-style residual VQ over the whole chunk — MLP encoder/decoder, `n_layers` residual quantizers of
`codebook_size` codes with EMA codebook updates, k-means initialization and dead-code expiry
(vector-quantize-pytorch's `ResidualVQ`). One token per layer; layer 1 is the coarse "primary" code. Ids are
layer-offset (`layer * codebook_size + code`), so `vocab_size = n_layers * codebook_size` is honest, and any prefix
of layers decodes (coarse to fine) with `decode_layers` (REFERENCES §6)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
import torch
from annotated_types import Interval
from torch import nn
from vector_quantize_pytorch import ResidualVQ

from actok.tokenizers.base import TokenBatch
from actok.tokenizers.learned import MAX_WIDTH, LearnedTokenizer, mlp
from actok.tokenizers.params import MAX_VOCAB, check_value


class RVQModel(nn.Module):
    def __init__(self, horizon: int, action_dim: int, n_layers: int, codebook_size: int, latent_dim: int, hidden: int):
        super().__init__()
        self.horizon, self.action_dim = horizon, action_dim
        width = horizon * action_dim
        self.encoder = mlp([width, hidden, hidden, latent_dim])
        self.decoder = mlp([latent_dim, hidden, hidden, width])
        self.rvq = ResidualVQ(
            dim=latent_dim,
            num_quantizers=n_layers,
            codebook_size=codebook_size,
            decay=0.99,
            commitment_weight=0.25,
            kmeans_init=True,
            kmeans_iters=10,
            threshold_ema_dead_code=2,
        )

    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.rvq(self.encoder(x.reshape(len(x), -1)))[1]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """`codes` `[B, n_layers]`; -1 marks a layer left out (its contribution is zero)."""
        return self.decoder(self.rvq.get_output_from_indices(codes)).view(len(codes), self.horizon, self.action_dim)

    def forward(self, x: torch.Tensor):
        z, idx, commit = self.rvq(self.encoder(x.reshape(len(x), -1)))
        return self.decoder(z).view_as(x), commit.sum(), idx


class RVQTokenizer(LearnedTokenizer):
    """Residual VQ over whole chunks.

    Args:
        n_layers: residual quantizers = tokens per chunk.
        codebook_size: codes per layer.
        latent_dim: dimension of the quantized latent.
        (plus the training arguments of `LearnedTokenizer`)
    """

    name = "rvq"
    conformance_params: ClassVar[dict[str, Any]] = {
        "codebook_size": 64,
        "latent_dim": 16,
        "hidden_dim": 64,
        "max_epochs": 10,
        "learning_rate": 3e-3,
        "device": "cpu",
        "progress": False,
    }
    conformance_rmse_bound = 0.17
    layered = True

    def __init__(
        self,
        n_layers: Annotated[int, Interval(ge=1, le=64)] = 4,
        codebook_size: Annotated[int, Interval(ge=2, le=MAX_VOCAB)] = 256,
        latent_dim: Annotated[int, Interval(ge=1, le=MAX_WIDTH)] = 64,
        **training: Any,
    ):
        super().__init__(**training)
        self.n_layers, self.codebook_size, self.latent_dim = n_layers, codebook_size, latent_dim

    def slot_sizes(self) -> list[int]:
        return [self.codebook_size] * self.n_layers

    def build_model(self) -> nn.Module:
        return RVQModel(
            self.horizon, self.action_dim, self.n_layers, self.codebook_size, self.latent_dim, self.hidden_dim
        )

    def _relaxed_codes(self, codes: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode the longest usable prefix of layers (coarse to fine); rows without a usable first layer stay 0."""
        prefix = np.cumprod(usable, axis=1).astype(bool)
        return prefix[:, 0], np.where(prefix, codes, -1)

    def decode_layers(self, ids: list[list[int]], n_layers: int) -> np.ndarray:
        """Decode from the first `n_layers` tokens of each sequence only (the coarse-to-fine view)."""
        n_layers = check_value("n_layers", Annotated[int, Interval(ge=1, le=self.n_layers)], n_layers)
        return self.decode(TokenBatch.from_ids(ids).fixed(n_layers), on_invalid="relaxed")
