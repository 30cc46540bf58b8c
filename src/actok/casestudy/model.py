"""A small decoder-only transformer conditioned on the spline's 4 points (nanoGPT-like, one file).

Input: 4 condition embeddings (a linear map of each (t, y) point), then the action tokens. The output at the
last condition position predicts the first token; each later position predicts the next one; the sequence ends
with EOS. `generate` decodes greedily with a key/value cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class ModelConfig:
    vocab_size: int  # tokenizer vocabulary + 1 (EOS, the last id)
    block_size: int  # condition positions + longest token sequence + EOS
    n_condition: int = 4
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:  # incremental decoding: attend to everything cached so far plus the new positions
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        causal = t > 1  # a single new query may see every cached key
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class SplineGPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.condition = nn.Linear(2, config.n_embd)
        self.condition_slot = nn.Parameter(torch.zeros(config.n_condition, config.n_embd))
        self.token = nn.Embedding(config.vocab_size, config.n_embd)
        self.position = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def eos_id(self) -> int:
        return self.config.vocab_size - 1

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(self, conditions: torch.Tensor | None, tokens: torch.Tensor | None, start: int) -> torch.Tensor:
        parts = []
        if conditions is not None:
            parts.append(self.condition(conditions) + self.condition_slot)
        if tokens is not None:
            parts.append(self.token(tokens))
        x = torch.cat(parts, dim=1)
        return x + self.position(torch.arange(start, start + x.shape[1], device=x.device))

    def forward(self, conditions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """`conditions` `[B, 4, 2]`, `tokens` `[B, L]` -> logits `[B, L + 1, V]` for tokens 1..L and EOS."""
        x = self._embed(conditions, tokens, 0)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, self.config.n_condition - 1 :]))

    def loss(self, conditions: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy; `targets` `[B, L + 1]` (the tokens, EOS, then -100 as padding)."""
        logits = self(conditions, tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(self, conditions: torch.Tensor, max_tokens: int) -> list[list[int]]:
        """Greedy decoding with a key/value cache; each sequence stops at its first EOS (not returned)."""
        b = len(conditions)
        caches: list[list] = [[] for _ in self.blocks]
        x = self._embed(conditions, None, 0)
        out = torch.empty(b, 0, dtype=torch.long, device=conditions.device)
        done = torch.zeros(b, dtype=torch.bool, device=conditions.device)
        position = self.config.n_condition
        for _ in range(min(max_tokens + 1, self.config.block_size - self.config.n_condition + 1)):
            for block, cache in zip(self.blocks, caches, strict=True):
                x = block(x, cache)
            next_id = self.head(self.ln_f(x[:, -1])).argmax(dim=-1)
            next_id = torch.where(done, self.eos_id, next_id)
            done |= next_id == self.eos_id
            out = torch.cat([out, next_id[:, None]], dim=1)
            if bool(done.all()) or position >= self.config.block_size:
                break
            x = self._embed(None, next_id[:, None], position)
            position += 1
        rows = out.tolist()
        return [row[: row.index(self.eos_id)] if self.eos_id in row else row[:max_tokens] for row in rows]


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of `base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))
