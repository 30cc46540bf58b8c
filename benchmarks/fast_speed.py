"""FAST speed: actok's batch encode/decode vs the reference's per-chunk loop, in the same run; fit time.

Targets (FAST issue): on 2,000 chunks of unitree_g1_pickbottle at H=30, D=26, encode >= 20x and decode >= 10x
faster than a per-chunk loop; fit on 50,000 such chunks in under 60 s. Both sides use the same fitted BPE and
are checked to return identical ids and reconstructions. actok runs on all usable cores by default (the
baseline's BPE calls are single-threaded, as in the reference); the one-thread rows (ACTOK_NUM_THREADS=1)
show what the compiled loops alone give. The library rows run actok's batch path through the tokenizers
library instead of the compiled loops (what FAST does without numba).

    python benchmarks/fast_speed.py --datasets-dir DIR [--root FOLDER]

`--datasets-dir` defaults to $ACTOK_SHARED_DATASETS; `--root` picks another dataset folder.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import numpy as np
from _datasets import add_datasets_dir, datasets_dir
from scipy.fft import dct, idct

from actok import FASTTokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.tokenizers import _fast_kernels

DATASET = "unitree_g1_pickbottle"  # inside --datasets-dir


def reference_tokenizer(tok: FASTTokenizer):
    """What the reference processor calls per chunk: transformers' PreTrainedTokenizerFast (raw tokenizers if
    transformers is not installed, which makes the baseline faster and the ratios smaller)."""
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return None
    return PreTrainedTokenizerFast(tokenizer_object=tok.bpe, clean_up_tokenization_spaces=False)


def per_chunk_encode(tok: FASTTokenizer, chunks: np.ndarray, wrapper) -> list[list[int]]:
    """The reference processor's loop: one DCT, one string and one BPE call per chunk."""
    out = []
    for chunk in chunks:
        rounded = np.around(dct(chunk, axis=0, norm="ortho") * tok.scale).astype(int)
        text = "".join(map(chr, np.maximum(rounded - tok.min_token, 0).flatten()))
        out.append(wrapper(text)["input_ids"] if wrapper is not None else tok.bpe.encode(text).ids)
    return out


def per_chunk_decode(tok: FASTTokenizer, ids: list[list[int]], horizon: int, dim: int, wrapper) -> np.ndarray:
    out = []
    for seq in ids:
        text = wrapper.decode(seq) if wrapper is not None else tok.bpe.decode(seq)
        coeff = np.array(list(map(ord, text))) + tok.min_token
        out.append(idct(coeff.reshape(-1, dim) / tok.scale, axis=0, norm="ortho"))
    return np.stack(out)


def best_of(fn, repeats):
    """Best time of `repeats` calls after one untimed warm-up call (first-call costs: numba's cache load, thread
    start-up, the allocator growing its heap), the same for both sides."""
    times, out = [], fn()
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help=f"dataset folder (default: DIR/{DATASET})")
    add_datasets_dir(parser)
    parser.add_argument("--n-chunks", type=int, default=2000)
    parser.add_argument("--fit-chunks", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = args.root or datasets_dir(parser, args) / DATASET

    reader = LeRobotDatasetReader(root)
    chunks = build_chunks(
        reader, ChunkConfig(action_horizon=30, encoded_dims="0:26", sample_fraction=1.0, holdout_fraction=0)
    ).train
    rng = np.random.default_rng(0)
    # The dataset has 33,065 distinct H=30 windows; the 50,000-chunk fit set adds resampled ones to reach the size.
    fit_set = np.concatenate([chunks, chunks[rng.choice(len(chunks), max(0, args.fit_chunks - len(chunks)))]])
    fit_set = fit_set[: args.fit_chunks]
    t0 = time.perf_counter()
    tok = FASTTokenizer(scale=10.0, vocab_size=1024).fit(fit_set)
    fit_s = time.perf_counter() - t0

    sample = chunks[rng.choice(len(chunks), args.n_chunks, replace=False)]
    wrapper = reference_tokenizer(tok)
    ids, enc_s = best_of(lambda: tok.encode(sample), args.repeats)
    base_ids, base_enc_s = best_of(lambda: per_chunk_encode(tok, sample, wrapper), args.repeats)
    assert ids == base_ids, "batch and per-chunk encode disagree"
    dec, dec_s = best_of(lambda: tok.decode(ids), args.repeats)
    base_dec, base_dec_s = best_of(lambda: per_chunk_decode(tok, ids, 30, 26, wrapper), args.repeats)
    assert np.array_equal(dec, base_dec), "batch and per-chunk decode disagree"

    one_thread = {}
    os.environ["ACTOK_NUM_THREADS"] = "1"
    one_thread["encode"] = best_of(lambda: tok.encode(sample), args.repeats)[1]
    one_thread["decode"] = best_of(lambda: tok.decode(ids), args.repeats)[1]
    del os.environ["ACTOK_NUM_THREADS"]
    library = copy.copy(tok)
    library.codec = copy.copy(tok.codec)
    library.codec.encode_tables = None  # actok's batch encode through the tokenizers library
    lib_ids, lib_enc_s = best_of(lambda: library.encode(sample), args.repeats)
    assert lib_ids == ids

    n = args.n_chunks
    print(
        f"baseline BPE calls through: {'transformers PreTrainedTokenizerFast (as the reference)' if wrapper else 'tokenizers.Tokenizer'}"
    )
    print(f"{reader.root.name}: H=30, D=26, {n} chunks, mean {np.mean([len(s) for s in ids]):.1f} tokens/chunk")
    print(f"actok threads: {_fast_kernels.num_threads()} (compiled loops: {tok.codec.encode_tables is not None})")
    rows = [
        ("encode", base_enc_s, enc_s, 20),
        ("decode", base_dec_s, dec_s, 10),
        ("encode, 1 thread", base_enc_s, one_thread["encode"], None),
        ("decode, 1 thread", base_dec_s, one_thread["decode"], None),
        ("encode, library BPE", base_enc_s, lib_enc_s, None),
    ]
    for name, base, ours, target in rows:
        goal = f" (target >= {target}x)" if target else ""
        print(
            f"{name:20s} per-chunk loop {base / n * 1e6:7.1f} us/chunk | actok batch {ours / n * 1e6:6.1f} us/chunk | {base / ours:5.1f}x{goal}"
        )
    print(f"fit on {len(fit_set)} chunks: {fit_s:.1f} s (target < 60 s)")


if __name__ == "__main__":
    main()
