"""Train and evaluate the case-study model for one (tokenizer, sampling rate) pair.

Flow: splines -> min/max normalization to [-1, 1] (fitted on the training sequences) -> tokenizer fitted on the
training sequences -> teacher-forced training for a fixed number of optimization steps -> greedy decoding on the
held-out sequences -> detokenize (validity mask) -> MSE against the true spline in its own units.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from actok.casestudy.data import SplineSet
from actok.casestudy.model import ConditionedGPT, ModelConfig, token_batch, train_model
from actok.errors import ActokError
from actok.tokenizers import available_tokenizers, create_tokenizer
from actok.tokenizers.base import ActionTokenizer

# "naive" is the paper's per-step tokenization: every sample into one of 256 uniform bins over the data range.
TOKENIZER_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {"naive": ("binning", {"n_bins": 256})}
EXAMPLES_PER_RECORD = 4  # held-out predictions kept in results.json for the plots


@dataclass
class TrainConfig:
    num_epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    seed: int = 0
    eval_batch_size: int = 256


@dataclass
class RunResult:
    tokenizer: str
    sampling_rate: int
    mse: float
    mse_std: float
    mse_valid: float | None
    invalid_fraction: float
    mean_tokens: float
    max_tokens: int
    train_time_sec: float
    eval_time_sec: float
    optimization_steps: int
    final_train_loss: float
    num_parameters: int
    num_train: int
    num_test: int
    copy_first_value_mse: float
    examples: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_tokenizer_names(spec: str | list[str]) -> list[str]:
    """`naive,fast` -> names, checked against the registry (plus the `naive` alias)."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    valid = sorted({*TOKENIZER_ALIASES, *available_tokenizers()})
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ActokError(f"unknown tokenizer {', '.join(unknown) or '(none given)'}; choose from: {', '.join(valid)}")
    return list(dict.fromkeys(names))


def make_tokenizer(name: str) -> ActionTokenizer:
    registry_name, params = TOKENIZER_ALIASES.get(name, (name, {}))
    return create_tokenizer(registry_name, **params)


def _generate(
    model: ConditionedGPT, conditions: np.ndarray, max_len: int, batch_size: int, device: torch.device
) -> list[list[int]]:
    """Greedy token sequences for the condition rows `[N, 4, 2]`, in batches."""
    model.eval()
    predicted: list[list[int]] = []
    conditions_t = torch.as_tensor(conditions).to(device)
    for b in range(0, len(conditions_t), batch_size):
        predicted += model.generate(conditions_t[b : b + batch_size], max_len)
    return predicted


def run_one(
    name: str,
    train: SplineSet,
    test: SplineSet,
    config: TrainConfig,
    device: torch.device,
    progress: bool = True,
) -> RunResult:
    """Fit the tokenizer, train the model for `num_epochs` epochs worth of steps, evaluate on `test`."""
    horizon = train.values.shape[1]
    lo, hi = float(train.values.min()), float(train.values.max())
    normalize = lambda v: 2.0 * (v - lo) / (hi - lo) - 1.0  # noqa: E731
    unnormalize = lambda v: (v + 1.0) / 2.0 * (hi - lo) + lo  # noqa: E731

    tokenizer = make_tokenizer(name).fit(normalize(train.values)[:, :, None])
    train_ids = tokenizer.encode(normalize(train.values)[:, :, None])
    max_len = max(len(x) for x in train_ids)
    eos = tokenizer.vocab_size
    torch.manual_seed(config.seed)
    sizes = {"n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd}
    model = ConditionedGPT(ModelConfig(vocab_size=eos + 1, block_size=4 + max_len + 1, **sizes)).to(device)
    inputs, targets = token_batch(train_ids, eos)
    conditions = torch.as_tensor(train.conditions)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        # Trim padding to the longest sequence in the batch (variable-length tokenizers train faster).
        width = int((targets[idx] != -100).sum(dim=1).max())
        return model.loss(
            conditions[idx].to(device), inputs[idx, : width - 1].to(device), targets[idx, :width].to(device)
        )

    start = time.perf_counter()
    log = train_model(
        model,
        batch_loss,
        len(train),
        num_epochs=config.num_epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        seed=config.seed,
        desc=f"{name} H={horizon}",
        progress=progress,
    )
    train_time = time.perf_counter() - start

    start = time.perf_counter()
    predicted = _generate(model, test.conditions, max_len, config.eval_batch_size, device)
    # The mask says which predictions are exact encodings; the error is measured on the "relaxed" decode (padded
    # or truncated to H samples, as LeRobot decodes), so a near-miss costs what it costs rather than a zero chunk.
    decoded, valid = tokenizer.decode(predicted, horizon=horizon, action_dim=1, return_valid=True, on_invalid="relaxed")
    prediction = unnormalize(decoded[:, :, 0])
    eval_time = time.perf_counter() - start

    per_sequence = ((prediction - test.values) ** 2).mean(axis=1)
    copy_first = ((test.values - test.values[:, :1]) ** 2).mean()
    return RunResult(
        tokenizer=name,
        sampling_rate=horizon,
        mse=float(per_sequence.mean()),
        mse_std=float(per_sequence.std()),
        mse_valid=float(per_sequence[valid].mean()) if valid.any() else None,
        invalid_fraction=float(1.0 - valid.mean()),
        mean_tokens=float(np.mean([len(x) for x in train_ids])),
        max_tokens=max_len,
        train_time_sec=train_time,
        eval_time_sec=eval_time,
        optimization_steps=log.steps,
        final_train_loss=log.final_loss,
        num_parameters=model.num_parameters(),
        num_train=len(train),
        num_test=len(test),
        copy_first_value_mse=float(copy_first),
        examples=_examples(test, prediction, valid),
    )


def _examples(test: SplineSet, prediction: np.ndarray, valid: np.ndarray) -> dict[str, list]:
    """The first held-out sequences and their predictions `[k, H]`, rounded: for the plots only, and results.json
    stays small."""
    k = EXAMPLES_PER_RECORD
    return {
        "times": np.round(test.times, 5).tolist(),
        "conditions": np.round(test.conditions[:k], 5).tolist(),
        "true": np.round(test.values[:k], 5).tolist(),
        "predicted": np.round(prediction[:k], 5).tolist(),
        "valid": valid[:k].tolist(),
    }
