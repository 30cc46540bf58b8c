"""`fsq`: finite scalar quantization (QueST-style): an MLP encoder over each sub-chunk of `chunk_size` steps
projects to len(levels) numbers, each bounded and rounded to its number of levels (vector-quantize-pytorch's
`FSQ`); a code is the mixed-radix index, prod(levels) codes in all, with no codebook to collapse. H / chunk_size
tokens per chunk (REFERENCES §6)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import torch
from annotated_types import Interval, Len
from torch import nn
from vector_quantize_pytorch import FSQ

from actok.tokenizers.learned import MAX_CHUNK_SIZE, LearnedTokenizer, check_sub_chunks, mlp
from actok.tokenizers.params import MAX_VOCAB


class FSQModel(nn.Module):
    def __init__(self, horizon: int, action_dim: int, chunk_size: int, levels: list[int], hidden: int):
        super().__init__()
        self.horizon, self.action_dim, self.chunk_size = horizon, action_dim, chunk_size
        width = chunk_size * action_dim
        self.encoder = mlp([width, hidden, hidden // 2, len(levels)])
        self.decoder = mlp([len(levels), hidden // 2, hidden, width])
        self.fsq = FSQ(levels=levels, dim=len(levels))

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x) * (self.horizon // self.chunk_size), 1, -1))

    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.fsq(self._latent(x))[1].view(len(x), -1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        z = self.fsq.indices_to_codes(codes.reshape(-1, 1))
        return self.decoder(z).view(len(codes), self.horizon, self.action_dim)

    def forward(self, x: torch.Tensor):
        z, idx = self.fsq(self._latent(x))
        return self.decoder(z).view_as(x), torch.zeros((), device=x.device), idx.view(len(x), -1)


class FSQTokenizer(LearnedTokenizer):
    """FSQ over sub-chunks.

    Args:
        levels: levels per latent dimension, e.g. [8, 5, 5, 5] (1000 codes).
        chunk_size: steps per token; must divide the horizon.
        (plus the training arguments of `LearnedTokenizer`)
    """

    name = "fsq"
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden_dim": 64,
        "max_epochs": 10,
        "learning_rate": 3e-3,
        "device": "cpu",
        "progress": False,
    }
    conformance_rmse_bound = 0.16

    def __init__(
        self,
        levels: Annotated[list[Annotated[int, Interval(ge=2, le=MAX_VOCAB)]], Len(1, 16)] = (8, 5, 5, 5),
        chunk_size: Annotated[int, Interval(ge=1, le=MAX_CHUNK_SIZE)] = 5,
        **training: Any,
    ):
        super().__init__(**training)
        self.levels, self.chunk_size = levels, chunk_size

    def check_shape_for_fit(self, horizon: int, action_dim: int) -> None:
        check_sub_chunks(self.name, horizon, self.chunk_size)

    def slot_sizes(self) -> list[int]:
        n_codes = 1
        for level in self.levels:
            n_codes *= level
        return [n_codes] * ((self.horizon or self.chunk_size) // self.chunk_size)

    def build_model(self) -> nn.Module:
        return FSQModel(self.horizon, self.action_dim, self.chunk_size, self.levels, self.hidden_dim)
