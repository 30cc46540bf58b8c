"""FAST action tokenizer (DCT + byte-level BPE) for `transformers.AutoProcessor`, written by actok.

Loaded with `AutoProcessor.from_pretrained(folder, trust_remote_code=True)`. Self-contained (numpy, scipy,
tokenizers, transformers); it gives the same ids and reconstructions as `actok.load_tokenizer(folder)`.

Public interface, as the reference processor: `processor(chunks)` -> list of id lists,
`processor.decode(tokens, time_horizon=None, action_dim=None)` -> array `[N, H, D]`,
`processor.fit(chunks, scale=..., vocab_size=..., time_horizon=..., action_dim=...)` -> a new processor.
Unlike the reference, encode clips coefficients into the fitted range (no symbol is ever dropped) and decode
marks sequences that do not decode to exactly H*D in-range symbols as invalid (zeros, or a repair with
`on_invalid="relaxed"`) instead of printing; `time_horizon`/`action_dim` survive save/load.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin


def _byte_symbols() -> list[str]:
    """GPT-2's byte -> printable character table used by byte-level BPE."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


class UniversalActionProcessor(ProcessorMixin):
    attributes = ("bpe_tokenizer",)  # transformers 4.x
    bpe_tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        bpe_tokenizer,
        scale=10.0,
        vocab_size=1024,
        min_token=0,
        max_token=None,
        time_horizon=None,
        action_dim=None,
        **kwargs,
    ):
        self.scale = float(scale)
        self.vocab_size = int(vocab_size)
        self.min_token = int(min_token)
        self.max_token = None if max_token is None else int(max_token)
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        super().__init__(bpe_tokenizer=bpe_tokenizer)
        self._emit_code = self._emit_table()

    def _emit_table(self):
        """For each code point of the fitted range, the nearest one whose UTF-8 bytes the BPE can emit."""
        if self.max_token is None:
            return None
        vocab = self.bpe_tokenizer.get_vocab()
        table = _byte_symbols()
        codes = np.arange(self.max_token - self.min_token + 1)
        emit = np.array([all(table[b] in vocab for b in chr(c).encode("utf-8")) for c in codes])
        ok = codes[emit]
        idx = np.clip(np.searchsorted(ok, codes), 1, len(ok) - 1) if len(ok) > 1 else np.zeros_like(codes)
        left, right = ok[np.maximum(idx - 1, 0)], ok[idx]
        out = np.where(np.abs(codes - left) <= np.abs(right - codes), left, right)
        out[emit] = codes[emit]
        return out

    def _codes(self, chunks):
        coeff = np.around(dct(chunks, axis=1, norm="ortho") * self.scale).astype(np.int64)
        codes = coeff.reshape(len(chunks), -1) - self.min_token
        if self._emit_code is None:
            return np.maximum(codes, 0)
        return self._emit_code[np.clip(codes, 0, self.max_token - self.min_token)]

    def __call__(self, action_chunk):
        """Chunks `[N, H, D]` (or one `[H, D]` chunk) -> list of id lists."""
        chunks = np.asarray(action_chunk, dtype=np.float64)
        if chunks.ndim == 2:
            chunks = chunks[None]
        codes = self._codes(chunks)
        length = codes.shape[1]
        text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
        strings = [text[i * length : (i + 1) * length] for i in range(len(codes))]
        return [e.ids for e in self.bpe_tokenizer.backend_tokenizer.encode_batch_fast(strings)]

    def decode(self, tokens, time_horizon=None, action_dim=None, on_invalid="zeros", return_valid=False):
        """Id lists -> chunks `[N, H, D]`; invalid sequences become zeros (or are padded/truncated with zero
        coefficients when `on_invalid="relaxed"`)."""
        horizon = time_horizon or self.time_horizon
        dim = action_dim or self.action_dim
        if horizon is None or dim is None:
            raise ValueError("time_horizon and action_dim are unknown: pass them to decode()")
        if len(tokens) and np.ndim(tokens[0]) == 0:
            tokens = [tokens]
        n_vocab = self.bpe_tokenizer.backend_tokenizer.get_vocab_size()
        top = (self.max_token - self.min_token) if self.max_token is not None else self.vocab_size
        n_coeff = horizon * dim
        out = np.zeros((len(tokens), n_coeff))
        valid = np.zeros(len(tokens), dtype=bool)
        for i, seq in enumerate(tokens):
            seq = [int(t) for t in seq]
            known = [t for t in seq if 0 <= t < n_vocab]
            text = self.bpe_tokenizer.backend_tokenizer.decode(known, skip_special_tokens=False)
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
            in_range = codes <= top
            valid[i] = len(known) == len(seq) and len(codes) == n_coeff and bool(in_range.all())
            if valid[i] or on_invalid == "relaxed":
                coeff = np.where(in_range, codes + self.min_token, 0)[:n_coeff]
                out[i, : len(coeff)] = coeff
        actions = idct(out.reshape(-1, horizon, dim) / self.scale, axis=1, norm="ortho")
        actions[~valid & (on_invalid != "relaxed")] = 0.0
        return (actions, valid) if return_valid else actions

    def fit(self, action_data, scale=None, vocab_size=None, time_horizon=None, action_dim=None):
        """Train a new processor on chunks `[N, H, D]` (or a list of `[H, D]` arrays)."""
        scale = self.scale if scale is None else float(scale)
        vocab_size = self.vocab_size if vocab_size is None else int(vocab_size)
        chunks = np.asarray(action_data, dtype=np.float64)
        coeff = np.around(dct(chunks, axis=1, norm="ortho") * scale).astype(np.int64).reshape(len(chunks), -1)
        lo, hi = int(coeff.min()), int(coeff.max())
        if hi - lo > vocab_size:
            raise ValueError(f"vocab_size {vocab_size} is smaller than the coefficient range {hi - lo}")
        length = coeff.shape[1]
        text = np.ascontiguousarray(coeff - lo, dtype="<u4").tobytes().decode("utf-32-le")
        bpe = ByteLevelBPETokenizer()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=[chr(i) for i in range(hi - lo + 1)],
            max_token_length=10000,
        )
        bpe._tokenizer.train_from_iterator(
            (text[i * length : (i + 1) * length] for i in range(len(coeff))), trainer=trainer
        )
        return UniversalActionProcessor(
            PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, clean_up_tokenization_spaces=False),
            scale=scale,
            vocab_size=vocab_size,
            min_token=lo,
            max_token=hi,
            time_horizon=time_horizon or chunks.shape[1],
            action_dim=action_dim or chunks.shape[2],
        )
