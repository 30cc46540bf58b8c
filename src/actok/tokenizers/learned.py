"""Shared machinery of the learned (torch) tokenizers: training with early stopping, token ids, save/load.

A learned tokenizer supplies a `torch.nn.Module` with
- `forward(x [B, H, D]) -> (reconstruction [B, H, D], auxiliary loss, codes [B, T])`,
- `encode_codes(x) -> codes [B, T]` and `decode_codes(codes [B, T]) -> [B, H, D]`,
and `slot_sizes()`: how many codes each of the T token positions can take. Token ids are made globally unique by
offsetting each position's codes (`id = offset[slot] + code`), so `vocab_size` is the sum of the slot sizes when
slots hold different things (RVQ layers) and the shared size when they hold the same thing (VQ-VAE sub-chunks).

Everything torch lives here and in the three tokenizer modules; the registry imports them lazily, so the core
install works without torch (`pip install 'actok[learned]'` adds it).
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Interval
from loguru import logger
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from actok.errors import ActokError, ActokWarning
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks
from actok.tokenizers.params import Matches, check_fields

logger.disable("vector_quantize_pytorch")  # the library logs k-means notes to stderr; we report through results
WEIGHTS_FILE = "model.safetensors"
DEVICES = "auto, cpu, cuda, cuda:N or mps"
INFERENCE_BATCH = 8192
MAX_WIDTH = 8192  # hidden and latent sizes


MAX_CHUNK_SIZE = 4096  # steps per token of the sub-chunk tokenizers (vqvae, fsq)


def check_sub_chunks(name: str, horizon: int, chunk_size: int) -> None:
    """Sub-chunk tokenizers (one token per `chunk_size` steps) need `chunk_size` to divide the horizon."""
    if horizon % chunk_size:
        divisors = [k for k in range(1, horizon + 1) if horizon % k == 0]
        raise ActokError(
            f"{name}: chunk_size {chunk_size} does not divide the horizon {horizon}; valid chunk_size values: "
            f"{', '.join(map(str, divisors))}"
        )


def resolve_device(spec: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ActokError(f"unknown device {spec!r}; choose {DEVICES}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ActokError(f"device {spec!r} requested but CUDA is not available; use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ActokError(f"device {spec!r} requested but MPS is not available; use auto or cpu")
    return device


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def code_statistics(codes: np.ndarray, slot_sizes: Sequence[int], layered: bool) -> dict[str, Any]:
    """Utilization diagnostics of codes `[N, T]`: per layer (RVQ) or pooled over positions (sub-chunk codes)."""
    groups = [codes[:, [t]] for t in range(codes.shape[1])] if layered else [codes]
    sizes = list(slot_sizes) if layered else [slot_sizes[0]]
    utilization, perplexity, dead = [], [], []
    for group, size in zip(groups, sizes, strict=True):
        counts = np.bincount(group.ravel(), minlength=size)
        p = counts[counts > 0] / counts.sum()
        utilization.append(float(np.count_nonzero(counts) / size))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
        dead.append(int(size - np.count_nonzero(counts)))
    return {
        "codebook_utilization": utilization,
        "codebook_perplexity": perplexity,
        "dead_codes": dead,
        "distinct_code_combinations": len(np.unique(codes, axis=0)),
    }


class LearnedTokenizer(ActionTokenizer):
    """Base of `vqvae`, `rvq` and `fsq`: subclasses build the module and say how many codes each slot has.

    Training: Adam on reconstruction MSE + the quantizer's loss, seeded; after every epoch the RMSE on the
    validation chunks (the held-out episodes when given, else the last `validation_fraction` of the chunks,
    which come episode by episode) decides early stopping, and the best weights are kept.
    """

    #: codes of different token positions mean different things (RVQ layers) -> per-layer diagnostics
    layered = False
    uses_validation = True
    decodes_fitted_shape_only = True
    conformance_decode_atol = 1e-5  # float32 matrix products round differently with the batch size

    def __init__(
        self,
        hidden_dim: Annotated[int, Interval(ge=2, le=MAX_WIDTH)] = 256,
        max_epochs: Annotated[int, Interval(ge=1, le=100_000)] = 300,
        batch_size: Annotated[int, Interval(ge=1, le=2**20)] = 256,
        learning_rate: Annotated[float, Interval(gt=0, le=1)] = 1e-3,
        patience: Annotated[int, Interval(ge=1, le=100_000)] = 10,
        validation_fraction: Annotated[float, Interval(gt=0, lt=1)] = 0.1,
        seed: Annotated[int, Interval(ge=0, le=2**32 - 1)] = 0,
        device: Annotated[str, Matches(r"auto|cpu|mps|cuda(:\d+)?", f"naming a device: {DEVICES}")] = "auto",
        progress: bool = True,
    ):
        super().__init__()
        resolve_device(device)  # fail early on a device this machine does not have
        self.hidden_dim, self.max_epochs, self.batch_size = hidden_dim, max_epochs, batch_size
        self.learning_rate, self.patience, self.validation_fraction = learning_rate, patience, validation_fraction
        self.seed, self.device, self.progress = seed, device, progress
        self.model: nn.Module | None = None
        self.training_summary: dict[str, Any] = {}

    # ------------------------------------------------------ subclass hooks
    @abstractmethod
    def build_model(self) -> nn.Module:
        """The module for chunks of shape `[H, D]` (`self.horizon`, `self.action_dim` are set)."""

    @abstractmethod
    def slot_sizes(self) -> list[int]:
        """Number of codes each token position can take (length = tokens per chunk)."""

    def check_shape_for_fit(self, horizon: int, action_dim: int) -> None:
        """Raise ActokError when the architecture cannot take chunks of this shape."""

    # ------------------------------------------------------------ protocol
    @property
    def offsets(self) -> np.ndarray:
        sizes = self.slot_sizes()
        if self.layered:
            return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return np.zeros(len(sizes), dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        sizes = self.slot_sizes()
        return int(sum(sizes)) if self.layered else int(max(sizes))

    @property
    def tokens_per_chunk(self) -> int:
        return len(self.slot_sizes())

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> LearnedTokenizer:
        """Train on normalized chunks `[N, H, D]`; `validation` (held-out episodes) drives early stopping."""
        chunks = as_chunks(chunks)
        self.check_shape_for_fit(chunks.shape[1], chunks.shape[2])
        chunks, validation, source = self._validation_split(chunks, validation)
        self._set_shape(chunks)
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        model = self.build_model().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        x_train = torch.as_tensor(chunks, dtype=torch.float32)
        x_val = torch.as_tensor(validation, dtype=torch.float32)
        steps = -(-len(x_train) // self.batch_size)
        best = (float("inf"), -1, copy.deepcopy(model.state_dict()))
        history: list[dict[str, float]] = []
        started = time.perf_counter()
        bar = tqdm(total=self.max_epochs, desc=f"training {self.name}", unit="epoch", disable=not self.progress)
        stop = "max_epochs"
        for epoch in range(self.max_epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            total = 0.0
            for b in range(steps):
                batch = x_train[order[b * self.batch_size : (b + 1) * self.batch_size]].to(device)
                recon, aux, _ = model(batch)
                loss = nn.functional.mse_loss(recon, batch) + aux
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item()
            val_rmse, val_codes = self._evaluate(model, x_val, device)
            utilization = float(
                np.mean(code_statistics(val_codes, self.slot_sizes(), self.layered)["codebook_utilization"])
            )
            history.append({"epoch": epoch, "train_loss": total / steps, "val_rmse": val_rmse})
            bar.set_postfix(loss=f"{total / steps:.4f}", val_rmse=f"{val_rmse:.4f}", util=f"{utilization:.0%}")
            bar.update()
            if val_rmse < best[0] * (1 - 1e-3):
                best = (val_rmse, epoch, copy.deepcopy(model.state_dict()))
            elif epoch - best[1] >= self.patience:
                stop = "early_stopping"
                break
        bar.close()
        model.load_state_dict(best[2])
        model.eval()
        self.model = model.cpu()  # inference runs on the CPU: 10k chunks take well under a second
        train_rmse, train_codes = self._evaluate(self.model, x_train, torch.device("cpu"))
        self.training_summary = {
            "epochs_run": len(history),
            "best_epoch": best[1],
            "stopped_by": stop,
            "train_rmse": train_rmse,
            "validation_rmse": best[0],
            "validation_source": source,
            "num_train_chunks": len(x_train),
            "num_validation_chunks": len(x_val),
            "train_time_sec": time.perf_counter() - started,
            "device": str(device),
            "train_codes": code_statistics(train_codes, self.slot_sizes(), self.layered),
            "history": history,
        }
        if stop == "max_epochs":
            warnings.warn(
                f"{self.name} reached max_epochs={self.max_epochs} before early stopping; the held-out error was "
                "still improving (raise max_epochs)",
                ActokWarning,
                stacklevel=2,
            )
        return self

    def _validation_split(
        self, chunks: np.ndarray, validation: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(training chunks, early-stopping chunks, where those come from): the held-out episodes when given, else
        the last `validation_fraction` of the training chunks."""
        if validation is None or len(validation) == 0:
            n_val = max(1, round(len(chunks) * self.validation_fraction))
            if len(chunks) - n_val < 1:
                raise ActokError(f"need at least 2 chunks to train {self.name}, got {len(chunks)}")
            return chunks[:-n_val], chunks[-n_val:], f"last {n_val} training chunks"
        validation = as_chunks(validation)
        if validation.shape[1:] != chunks.shape[1:]:
            raise ActokError(f"validation chunks {validation.shape[1:]} differ from training chunks {chunks.shape[1:]}")
        return chunks, validation, "held-out episodes"

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalized chunks `[N, H, D]` -> `tokens_per_chunk` ids per chunk."""
        chunks = self._check_shape(chunks)
        return (self.codes(chunks) + self.offsets).tolist()

    def codes(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[N, H, D]` -> raw codes `[N, T]` (before the per-slot id offset)."""
        model = self._check_model()
        x = torch.as_tensor(np.asarray(chunks), dtype=torch.float32)
        with torch.inference_mode():
            parts = [model.encode_codes(x[i : i + INFERENCE_BATCH]) for i in range(0, len(x), INFERENCE_BATCH)]
        return torch.cat(parts).numpy().astype(np.int64) if parts else np.zeros((0, self.tokens_per_chunk), np.int64)

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Valid: exactly `tokens_per_chunk` ids, each inside its slot's range. The repair keeps what it can
        (`_relaxed_codes`)."""
        model = self._check_model()
        t = self.tokens_per_chunk
        body = batch.fixed(t)
        codes = body - self.offsets
        in_slot = (body >= 0) & (codes >= 0) & (codes < np.asarray(self.slot_sizes()))
        valid = (batch.lengths == t) & in_slot.all(axis=1)
        out = np.zeros((len(body), horizon, action_dim))
        keep, usable = self._relaxed_codes(codes, in_slot) if relaxed else (valid, codes)
        if keep.any():
            out[keep] = self._decode_codes(model, usable[keep])
        return out, valid

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        return (
            f"exactly {self.tokens_per_chunk} ids, position i in [offset_i, offset_i + codes_i) "
            f"with offsets {self.offsets.tolist()}"
        )

    def _relaxed_codes(self, codes: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best effort for invalid sequences: decode only rows whose every slot is usable (subclasses do more)."""
        return usable.all(axis=1), np.where(usable, codes, 0)

    def _decode_codes(self, model: nn.Module, codes: np.ndarray) -> np.ndarray:
        c = torch.as_tensor(codes, dtype=torch.long)
        with torch.inference_mode():
            parts = [model.decode_codes(c[i : i + INFERENCE_BATCH]) for i in range(0, len(c), INFERENCE_BATCH)]
        return torch.cat(parts).double().numpy()

    def diagnostics(self, chunks: np.ndarray, ids: list[list[int]]) -> dict[str, Any]:
        """Code utilization, perplexity, dead codes and distinct combinations of `ids` (the evaluated chunks'
        codes), and what training recorded: dead codes on the training chunks, the training RMSE, epochs run and
        why training stopped."""
        codes = np.asarray(ids, dtype=np.int64) - self.offsets
        summary = self.training_summary
        return {
            **code_statistics(codes, self.slot_sizes(), self.layered),
            "train_dead_codes": summary.get("train_codes", {}).get("dead_codes"),
            "tokens_per_chunk": self.tokens_per_chunk,
            "train_rmse": summary.get("train_rmse"),
            "epochs_run": summary.get("epochs_run"),
            "stopped_by": summary.get("stopped_by"),
        }

    # -------------------------------------------------------------- internals
    def _check_model(self) -> nn.Module:
        if self.model is None:
            raise ActokError(f"{self.name} tokenizer is not fitted: call fit(chunks) first or load a saved one")
        return self.model

    @staticmethod
    def _evaluate(model: nn.Module, x: torch.Tensor, device: torch.device) -> tuple[float, np.ndarray]:
        """RMSE of the quantized reconstruction of `x` and its codes."""
        model.eval()
        sq, codes = 0.0, []
        with torch.inference_mode():
            for i in range(0, len(x), INFERENCE_BATCH):
                batch = x[i : i + INFERENCE_BATCH].to(device)
                c = model.encode_codes(batch)
                sq += float(((model.decode_codes(c) - batch) ** 2).sum())
                codes.append(c.cpu())
        return float(np.sqrt(sq / x.numel())), torch.cat(codes).numpy().astype(np.int64)

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        model = self._check_model()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        return {
            "weights": WEIGHTS_FILE,
            "training_summary": {k: v for k, v in self.training_summary.items() if k != "history"},
        }

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        fields = {"weights": Literal[WEIGHTS_FILE], "training_summary": dict}
        self.training_summary = check_fields(directory / CONFIG_FILE, state, fields)["training_summary"]
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise ActokError(f"{directory} is not a complete {self.name} tokenizer: the file {path.name} is missing")
        try:
            weights = load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError (or OSError)
            raise ActokError(f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]})") from None
        try:
            self.check_shape_for_fit(self.horizon, self.action_dim)
        except ActokError as exc:
            raise ActokError(f"{directory / CONFIG_FILE}: {exc}") from None
        torch.manual_seed(self.seed)
        model = self.build_model()
        expected = model.state_dict()
        missing = sorted(expected.keys() - weights.keys())
        unexpected = sorted(weights.keys() - expected.keys())
        reshaped = [k for k in expected.keys() & weights.keys() if weights[k].shape != expected[k].shape]
        if missing or unexpected or reshaped:
            problems = [
                f"{label} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", sorted(reshaped)))
                if keys
            ]
            raise ActokError(
                f"{path} does not hold the weights of the {self.name} model {CONFIG_FILE} describes "
                f"({'; '.join(problems)})"
            )
        if not all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()):
            raise ActokError(f"{path} holds non-finite weights")
        model.load_state_dict(weights)
        self.model = model.eval()
