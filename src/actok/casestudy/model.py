"""A small decoder-only transformer conditioned on a few vectors (nanoGPT-like, one file), and its training loop.

Input: `n_condition` condition embeddings (a linear map of each `condition_dim` vector: the case study's 4 (t, y)
spline points, a policy's last observations), then the action tokens. Three heads share the backbone:
- autoregressive (`loss`, `generate`): the output at the last condition position predicts the first token, each
  later position the next one, the sequence ends with EOS; greedy decoding with a key/value cache;
- parallel (`parallel_loss`, `generate_parallel`): a fixed number of placeholder positions (the EOS id) after the
  conditions predict every token at once, so no token sees another's value;
- regression (`regression_loss`, `regress`; `regression_dim > 0`): a linear map of the last condition position's
  output to a continuous vector (a normalized action chunk), trained with MSE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm


@dataclass
class ModelConfig:
    vocab_size: int  # tokenizer vocabulary + 1 (EOS, the last id)
    block_size: int  # condition positions + longest token sequence + EOS
    n_condition: int = 4
    condition_dim: int = 2
    regression_dim: int = 0  # > 0: add the continuous head
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


class ConditionedGPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.condition = nn.Linear(config.condition_dim, config.n_embd)
        self.condition_slot = nn.Parameter(torch.zeros(config.n_condition, config.n_embd))
        self.token = nn.Embedding(config.vocab_size, config.n_embd)
        self.position = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.regression = nn.Linear(config.n_embd, config.regression_dim) if config.regression_dim else None
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

    def _features(self, conditions: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        x = self._embed(conditions, tokens, 0)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, conditions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """`conditions` `[B, n_condition, condition_dim]`, `tokens` `[B, L]` -> logits `[B, L + 1, V]` for tokens
        1..L and EOS."""
        return self.head(self._features(conditions, tokens)[:, self.config.n_condition - 1 :])

    def loss(self, conditions: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy; `targets` `[B, L + 1]` (the tokens, EOS, then -100 as padding)."""
        logits = self(conditions, tokens)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    def parallel_logits(self, conditions: torch.Tensor, length: int) -> torch.Tensor:
        """Logits `[B, length, V]` of every token at once (placeholder inputs, so no token sees another)."""
        placeholders = torch.full((len(conditions), length), self.eos_id, dtype=torch.long, device=conditions.device)
        return self(conditions, placeholders)[:, 1:]

    def parallel_loss(self, conditions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of all `[B, L]` target tokens predicted in one pass."""
        logits = self.parallel_logits(conditions, targets.shape[1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @torch.no_grad()
    def generate_parallel(self, conditions: torch.Tensor, length: int) -> list[list[int]]:
        """Greedy ids `[B][length]` from one forward pass (EOS, which the head may still pick, is kept)."""
        return self.parallel_logits(conditions, length).argmax(dim=-1).tolist()

    def regress(self, conditions: torch.Tensor) -> torch.Tensor:
        """The continuous head: `[B, regression_dim]` from the last condition position."""
        if self.regression is None:
            raise ValueError("this model has no regression head (regression_dim = 0)")
        return self.regression(self._features(conditions, None)[:, -1])

    def regression_loss(self, conditions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared error of `regress` against `targets` `[B, regression_dim]`."""
        return F.mse_loss(self.regress(conditions), targets)

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


def token_batch(ids: list[list[int]], eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> inputs `[N, L]` (EOS-padded) and targets `[N, L + 1]` (tokens, EOS, then -100)."""
    lengths = torch.as_tensor([len(x) for x in ids], dtype=torch.long)
    flat = torch.as_tensor([t for x in ids for t in x], dtype=torch.long)
    inside = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    inputs = torch.full(inside.shape, eos, dtype=torch.long)
    inputs[inside] = flat
    targets = torch.full((len(ids), inside.shape[1] + 1), -100, dtype=torch.long)
    targets[:, :-1][inside] = flat
    targets[torch.arange(len(ids)), lengths] = eos
    return inputs, targets


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of `base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class TrainLog:
    steps: int
    final_loss: float  # the last batch's loss
    history: list[dict[str, float]]  # one row per epoch: epoch, step, train_loss (epoch mean), what on_epoch adds


def train_model(
    model: nn.Module,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    num_items: int,
    *,
    num_epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    seed: int,
    desc: str = "train",
    progress: bool = True,
    on_epoch: Callable[[int], dict[str, float]] | None = None,
) -> TrainLog:
    """AdamW over `num_epochs` shuffled passes of `num_items` examples, cosine schedule annealed to the last step.

    `batch_loss(idx)` returns the loss of the examples `idx` `[B]`; `on_epoch(epoch)` may return metrics for the
    epoch's history row (e.g. a held-out loss; the model is put back in training mode afterwards).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = -(-num_items // batch_size)
    total = num_epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    step, loss_value = 0, float("nan")
    model.train()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    for epoch in range(num_epochs):
        order = torch.randperm(num_items, generator=generator)
        losses = []
        for b in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, learning_rate, warmup_steps)
            loss = batch_loss(order[b * batch_size : (b + 1) * batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            loss_value = loss.item()
            losses.append(loss_value)
            bar.update()
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss_value:.3f}")
        row = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses))}
        if on_epoch is not None:
            model.eval()
            row.update(on_epoch(epoch + 1))
            model.train()
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.endswith("loss")})
        history.append(row)
    bar.close()
    return TrainLog(steps=step, final_loss=loss_value, history=history)
