"""The contenders and how each is trained: one backbone (the case study's `ConditionedGPT`), one data set, one
budget; only the action representation varies.

- `tokens`: a tokenizer's ids, predicted autoregressively (teacher forcing, greedy decoding with a KV cache) or,
  for a fixed-length tokenizer, all at once (`head="parallel"`); decoded with the chosen decode policy.
- `continuous`: the same backbone with a regression head, MSE on the normalized chunk (no tokenization).
- `noop`: no model; the agent holds its position (the floor every policy must beat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actok.casestudy.model import ConditionedGPT, ModelConfig, TrainLog, token_batch, train_model
from actok.data.normalize import Normalizer
from actok.errors import ActokError
from actok.policy.data import PolicyData
from actok.tokenizers import create_tokenizer
from actok.tokenizers.base import ActionTokenizer

KINDS = ("tokens", "continuous", "noop")
HEADS = ("autoregressive", "parallel")
# What a policy does with a predicted token sequence that is not a valid encoding: the tokenizer's own decode
# policies (`relaxed`: pad/truncate as LeRobot does, `zeros`: the middle of the action range), or `hold`: keep
# the agent where it is for that chunk.
DECODE_POLICIES = ("relaxed", "zeros", "hold")


@dataclass
class PolicySpec:
    """One contender. `label` names it in tables and figures."""

    label: str
    kind: str = "tokens"
    tokenizer: str | None = None  # registered name (kind tokens, unless `path`)
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # a saved tokenizer folder
    head: str = "autoregressive"


@dataclass
class TrainSettings:
    """The shared budget: every trained contender gets exactly this (fixed epochs, cosine schedule annealed to
    the end; the last checkpoint is evaluated, see docs/policy.md for why not the best validation loss)."""

    num_epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    validation_chunks: int = 1024  # held-out examples scored after every epoch (learning curves)


@dataclass
class Policy:
    """A trained contender: `predict` maps conditions to raw action chunks."""

    spec: PolicySpec
    horizon: int
    action_dim: int
    normalizer: Normalizer
    decode_policy: str
    model: ConditionedGPT | None = None
    tokenizer: ActionTokenizer | None = None
    max_tokens: int = 0
    device: str = "cpu"

    def predict(self, conditions: np.ndarray, hold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`conditions` `[B, n_obs, F]`, `hold` `[B, D]` (the raw action that keeps the agent in place) ->
        raw chunks `[B, H, D]`, valid `[B]` bool (False: not a valid encoding), tokens generated `[B]`."""
        b = len(conditions)
        if self.spec.kind == "noop":
            return np.repeat(hold[:, None, :], self.horizon, axis=1), np.ones(b, bool), np.zeros(b, int)
        cond = torch.as_tensor(conditions, dtype=torch.float32, device=self.device)
        if self.spec.kind == "continuous":
            with torch.no_grad():
                flat = self.model.regress(cond).cpu().numpy().astype(np.float64)
            chunk = flat.reshape(b, self.horizon, self.action_dim)
            return self.normalizer.unnormalize(chunk), np.ones(b, bool), np.zeros(b, int)
        if self.spec.head == "parallel":
            ids = self.model.generate_parallel(cond, self.max_tokens)
        else:
            ids = self.model.generate(cond, self.max_tokens)
        on_invalid = "zeros" if self.decode_policy == "hold" else self.decode_policy
        normalized, valid = self.tokenizer.decode(
            ids, horizon=self.horizon, action_dim=self.action_dim, return_valid=True, on_invalid=on_invalid
        )
        chunk = self.normalizer.unnormalize(normalized)
        if self.decode_policy == "hold":
            chunk[~valid] = hold[~valid, None, :]
        return chunk, valid, np.array([len(x) for x in ids])


def fitted_tokenizer(spec: PolicySpec, data: PolicyData) -> tuple[ActionTokenizer, Normalizer]:
    """A registered tokenizer fitted on the training chunks (normalized with the data's MIN_MAX statistics), or a
    saved folder with the normalization it records (its horizon and dims must match the chunks)."""
    if spec.path is None:
        normalized = data.action_normalizer.normalize(data.chunks[data.train])
        return create_tokenizer(spec.tokenizer, **spec.params).fit(normalized), data.action_normalizer
    from actok.codec import ActionCodec

    codec = ActionCodec.load(Path(spec.path))
    if codec.horizon != data.horizon:
        raise ActokError(
            f"tokenizer folder {spec.path} was trained on chunks of {codec.horizon} actions but the policy "
            f"benchmark uses --action-horizon {data.horizon}; pass --action-horizon {codec.horizon}"
        )
    if codec.encoded_dims != list(range(data.action_dim)) or codec.spec.delta_positions:
        raise ActokError(
            f"tokenizer folder {spec.path} encodes dims {codec.encoded_dims} with delta dims "
            f"{codec.spec.delta_dims}; the policy benchmark needs every action dim, no delta transform"
        )
    return codec.tokenizer, codec.normalizer


def _subset(indices: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(indices) <= limit:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, limit, replace=False))


def _batched(fn, n: int, size: int = 512) -> float:
    """Mean of `fn(slice)` weighted by slice length, under no_grad (validation losses)."""
    with torch.no_grad():
        return float(
            sum(fn(slice(i, i + size)).item() * len(range(i, min(i + size, n))) for i in range(0, n, size)) / n
        )


def train_policy(
    spec: PolicySpec,
    data: PolicyData,
    settings: TrainSettings,
    seed: int,
    device: str,
    decode_policy: str,
    progress: bool = True,
) -> tuple[Policy, TrainLog | None, float]:
    """Train one contender on `data.train` -> (policy, learning curve, training seconds)."""
    base = dict(horizon=data.horizon, action_dim=data.action_dim, decode_policy=decode_policy, device=device)
    if spec.kind == "noop":
        return Policy(spec, normalizer=data.action_normalizer, **base), None, 0.0
    torch.manual_seed(seed)
    start = time.perf_counter()
    val = _subset(data.holdout, settings.validation_chunks, seed)
    cond = torch.as_tensor(data.conditions, device=device)
    config = dict(
        n_condition=data.conditions.shape[1],
        condition_dim=data.conditions.shape[2],
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        n_embd=settings.n_embd,
        dropout=settings.dropout,
    )
    if spec.kind == "continuous":
        normalizer = data.action_normalizer
        target = torch.as_tensor(normalizer.normalize(data.chunks).reshape(len(data.chunks), -1), dtype=torch.float32)
        model = ConditionedGPT(ModelConfig(1, config["n_condition"], regression_dim=target.shape[1], **config))
        model.to(device)

        def loss(idx):
            return model.regression_loss(cond[idx], target[idx].to(device))

        policy = Policy(spec, normalizer=normalizer, model=model, **base)
    else:
        tokenizer, normalizer = fitted_tokenizer(spec, data)
        ids = tokenizer.encode(normalizer.normalize(data.chunks))
        loss, model, max_tokens = _token_objective(spec, ids, tokenizer.vocab_size, cond, config, data, device)
        policy = Policy(spec, normalizer=normalizer, model=model, tokenizer=tokenizer, max_tokens=max_tokens, **base)
    train_idx = torch.as_tensor(data.train)
    val_idx = torch.as_tensor(val)
    log = train_model(
        model,
        lambda idx: loss(train_idx[idx]),
        len(train_idx),
        num_epochs=settings.num_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        seed=seed,
        desc=f"{spec.label} seed {seed}",
        progress=progress,
        on_epoch=(lambda _: {"val_loss": _batched(lambda s: loss(val_idx[s]), len(val_idx))}) if len(val) else None,
    )
    model.eval()
    return policy, log, time.perf_counter() - start


def _token_objective(spec, ids, vocab_size, cond, config, data, device):
    """(loss of examples idx, model, tokens to generate) for the autoregressive or the parallel head."""
    lengths = {len(x) for x in ids}
    eos = vocab_size
    if spec.head == "parallel":
        if len(lengths) != 1:
            raise ActokError(
                f"the parallel head needs a fixed-length tokenizer; {spec.label} gives {min(lengths)} to "
                f"{max(lengths)} tokens per chunk"
            )
        length = lengths.pop()
        targets = torch.as_tensor(np.array(ids), dtype=torch.long)
        model = ConditionedGPT(ModelConfig(eos + 1, config["n_condition"] + length + 1, **config)).to(device)

        def loss(idx):
            return model.parallel_loss(cond[idx], targets[idx].to(device))

        return loss, model, length
    inputs, targets = token_batch(ids, eos)
    max_len = inputs.shape[1]
    model = ConditionedGPT(ModelConfig(eos + 1, config["n_condition"] + max_len + 1, **config)).to(device)

    def loss(idx):
        width = int((targets[idx] != -100).sum(dim=1).max())  # trim padding to the batch's longest sequence
        return model.loss(cond[idx], inputs[idx, : width - 1].to(device), targets[idx, :width].to(device))

    return loss, model, max_len


def token_accuracy(policy: Policy, data: PolicyData, idx: np.ndarray) -> float | None:
    """Teacher-forced share of target tokens (EOS included for the autoregressive head) whose argmax is right."""
    if policy.spec.kind != "tokens":
        return None
    ids = policy.tokenizer.encode(policy.normalizer.normalize(data.chunks[idx]))
    cond = torch.as_tensor(data.conditions[idx], device=policy.device)
    with torch.no_grad():
        if policy.spec.head == "parallel":
            targets = torch.as_tensor(np.array(ids), dtype=torch.long)
            logits = policy.model.parallel_logits(cond, targets.shape[1])
        else:
            inputs, targets = token_batch(ids, policy.tokenizer.vocab_size)
            logits = policy.model(cond, inputs.to(policy.device))
    mask = targets != -100
    hits = (logits.argmax(dim=-1).cpu() == targets) & mask
    return float(hits.sum() / mask.sum())
