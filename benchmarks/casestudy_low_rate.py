"""Why is FAST worse than naive at H=25 in the case study (docs/casestudy.md, "The low-rate gap")?

One factor at a time against the case study's default run (1000 splines, 100 epochs, FAST scale 10 / vocab 1024):
the BPE vocabulary, the training steps, the number of training splines, the DCT scale, and the tokenizer's own
reconstruction floor (encode -> decode of the held-out splines, no model). Every run is the case study's own
`run_one`; only the tokenizer settings, epochs or data size change.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/casestudy_low_rate.py docs/casestudy/low_rate_ablation.json
    ... benchmarks/casestudy_low_rate.py part.json "fast 4000 splines"      # only the runs named
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from actok.casestudy.data import conditioning_points, sample_splines, train_test_split
from actok.casestudy.experiment import TOKENIZER_ALIASES, TrainConfig, make_tokenizer, run_one

H = 25
# name -> (tokenizer, params, epochs, splines)
RUNS = {  # cheapest and most telling first (FAST runs are short: ~4 tokens per spline against naive's 25)
    "fast (default: scale 10, vocab 1024)": ("fast", {}, 100, 1000),
    "fast vocab 256": ("fast", {"vocab_size": 256}, 100, 1000),
    "fast scale 20": ("fast", {"scale": 20.0}, 100, 1000),
    "fast 400 epochs": ("fast", {}, 400, 1000),
    "fast 4000 splines": ("fast", {}, 100, 4000),
    "naive": ("binning", {"n_bins": 256}, 100, 1000),
    "fast vocab 512": ("fast", {"vocab_size": 512}, 100, 1000),
    "fast scale 40, vocab 2048": ("fast", {"scale": 40.0, "vocab_size": 2048}, 100, 1000),
    "naive 4000 splines": ("binning", {"n_bins": 256}, 100, 4000),
}


def splits(num_sequences: int, seed: int = 0):
    conditions = conditioning_points(num_sequences, seed)
    train_idx, test_idx = train_test_split(num_sequences, 0.2, seed)
    splines = sample_splines(conditions, H)
    return splines.subset(train_idx), splines.subset(test_idx)


def tokenizer_only(name: str, train, test) -> dict:
    """The tokenizer alone: held-out splines encoded and decoded (the floor any model trained on it sits on), the
    vocabulary the training splines use, and the share of held-out tokens seen fewer than 5 times in training."""
    lo, hi = float(train.values.min()), float(train.values.max())
    normalize = lambda v: (2.0 * (v - lo) / (hi - lo) - 1.0)[:, :, None]  # noqa: E731
    tokenizer = make_tokenizer(name).fit(normalize(train.values))
    test_ids = tokenizer.encode(normalize(test.values))
    decoded = tokenizer.decode(test_ids, horizon=H, action_dim=1)[:, :, 0]
    counts = np.bincount(np.concatenate(tokenizer.encode(normalize(train.values))), minlength=tokenizer.vocab_size)
    flat = np.concatenate(test_ids)
    return {
        "reconstruction_mse": float((((decoded + 1.0) / 2.0 * (hi - lo) + lo - test.values) ** 2).mean()),
        "vocab_size": tokenizer.vocab_size,
        "vocab_used_in_training": int((counts > 0).sum()),
        "heldout_tokens_rare_share": float((counts[flat] < 5).mean()),
    }


def main(out: Path, only: list[str]) -> None:
    torch.set_num_threads(1)
    rows = []
    for label, (tokenizer, params, epochs, splines) in RUNS.items():
        if only and label not in only:
            continue
        TOKENIZER_ALIASES[label] = (tokenizer, params)
        train, test = splits(splines)
        result = run_one(label, train, test, TrainConfig(num_epochs=epochs), torch.device("cpu"), progress=False)
        row = {
            "run": label,
            "mse": result.mse,
            "mse_valid": result.mse_valid,
            "invalid_fraction": result.invalid_fraction,
            **tokenizer_only(label, train, test),
            "mean_tokens": result.mean_tokens,
            "final_train_loss": result.final_train_loss,
            "steps": result.optimization_steps,
            "train_splines": result.num_train,
            "train_time_sec": result.train_time_sec,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
