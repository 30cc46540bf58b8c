"""`vqvae`: the tutorial's VQ-VAE — an MLP encoder over each sub-chunk of `chunk_size` steps, nearest entry of a
learned codebook (straight-through estimator), codebook loss + 0.25 x commitment loss, and dead-code reset
(unused codes re-initialized from encoder outputs of the current batch). H / chunk_size tokens per chunk, ids in
[0, codebook_size) at every position (REFERENCES §6)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch
from annotated_types import Interval
from torch import nn
from torch.nn import functional as F

from actok.tokenizers.learned import MAX_CHUNK_SIZE, MAX_WIDTH, LearnedTokenizer, check_sub_chunks, mlp
from actok.tokenizers.params import MAX_VOCAB

COMMITMENT_WEIGHT = 0.25
USAGE_DECAY = 0.9  # EMA of how often each code is picked per training step (half-life ~7 steps)
DEAD_USAGE = 0.03  # codes picked less often than this (EMA) are reset


class VQVAEModel(nn.Module):
    def __init__(self, horizon: int, action_dim: int, chunk_size: int, codebook_size: int, code_dim: int, hidden: int):
        super().__init__()
        self.horizon, self.action_dim, self.chunk_size = horizon, action_dim, chunk_size
        width = chunk_size * action_dim
        self.encoder = mlp([width, hidden, hidden // 2, code_dim])
        self.decoder = mlp([code_dim, hidden // 2, hidden, width])
        self.codebook = nn.Embedding(codebook_size, code_dim)
        nn.init.uniform_(self.codebook.weight, -1 / codebook_size, 1 / codebook_size)
        self.register_buffer("usage", torch.ones(codebook_size))

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x) * (self.horizon // self.chunk_size), -1))

    def _nearest(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cdist(z, self.codebook.weight).argmin(dim=-1)

    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self._nearest(self._latent(x)).view(len(x), -1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.codebook(codes.reshape(-1))).view(len(codes), self.horizon, self.action_dim)

    def forward(self, x: torch.Tensor):
        z_e = self._latent(x)
        idx = self._nearest(z_e)
        z_q = self.codebook(idx)
        codebook_loss = F.mse_loss(z_q, z_e.detach())
        commitment_loss = F.mse_loss(z_e, z_q.detach())
        recon = self.decoder(z_e + (z_q - z_e).detach()).view_as(x)
        if self.training:
            self._reset_dead_codes(idx, z_e.detach())
        return recon, codebook_loss + COMMITMENT_WEIGHT * commitment_loss, idx.view(len(x), -1)

    @torch.no_grad()
    def _reset_dead_codes(self, idx: torch.Tensor, z_e: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=len(self.usage)).float()
        self.usage.mul_(USAGE_DECAY).add_(counts, alpha=1 - USAGE_DECAY)
        dead = torch.nonzero(self.usage < DEAD_USAGE).squeeze(1)
        if len(dead):
            pick = torch.randint(len(z_e), (len(dead),), device=z_e.device)
            self.codebook.weight[dead] = z_e[pick]
            self.usage[dead] = 1.0


class VQVAETokenizer(LearnedTokenizer):
    """VQ-VAE over sub-chunks.

    Args:
        codebook_size: codes in the codebook (the vocabulary).
        code_dim: dimension of a code vector.
        chunk_size: steps per token; must divide the horizon.
        (plus the training arguments of `LearnedTokenizer`)
    """

    name = "vqvae"
    conformance_params: ClassVar[dict[str, Any]] = {
        "codebook_size": 128,
        "code_dim": 8,
        "hidden_dim": 64,
        "max_epochs": 10,
        "learning_rate": 3e-3,
        "device": "cpu",
        "progress": False,
    }
    conformance_rmse_bound = 0.15

    def __init__(
        self,
        codebook_size: Annotated[int, Interval(ge=2, le=MAX_VOCAB)] = 512,
        code_dim: Annotated[int, Interval(ge=1, le=MAX_WIDTH)] = 32,
        chunk_size: Annotated[int, Interval(ge=1, le=MAX_CHUNK_SIZE)] = 5,
        **training: Any,
    ):
        super().__init__(**training)
        self.codebook_size, self.code_dim, self.chunk_size = codebook_size, code_dim, chunk_size

    def check_shape_for_fit(self, horizon: int, action_dim: int) -> None:
        check_sub_chunks(self.name, horizon, self.chunk_size)

    def slot_sizes(self) -> list[int]:
        return [self.codebook_size] * ((self.horizon or self.chunk_size) // self.chunk_size)

    def build_model(self) -> nn.Module:
        return VQVAEModel(
            self.horizon, self.action_dim, self.chunk_size, self.codebook_size, self.code_dim, self.hidden_dim
        )
