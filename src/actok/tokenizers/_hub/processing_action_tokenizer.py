"""FAST action tokenizer (DCT + byte-level BPE) for `transformers.AutoProcessor`, written by actok.

Loaded with `AutoProcessor.from_pretrained(folder, trust_remote_code=True)`. Self-contained (numpy, scipy,
tokenizers, transformers); it gives the same ids and reconstructions as `actok.load_tokenizer(folder)`.

Public interface, as the reference processor: `processor(chunks)` -> list of id lists,
`processor.decode(tokens, time_horizon=None, action_dim=None)` -> array `[N, H, D]`,
`processor.fit(chunks, scale=..., vocab_size=..., time_horizon=..., action_dim=...)` -> a new processor.
Encode gives the reference's ids: the DCT in the input's float dtype, coefficients below min_token clamped to it,
those above max_token spelled with byte tokens. Where the reference raises (a code point in U+D800-DFFF or beyond
U+10FFFF) the coefficient is clipped into the fitted range, as every coefficient is with `clip=True`. Decode marks
what the reference cannot decode to a chunk of the right shape as invalid (unknown ids, bytes that are not UTF-8,
a wrong number of symbols): zeros, or with `on_invalid="relaxed"` unknown ids skipped, broken bytes read as zero
coefficients, padded/truncated with zero coefficients. `time_horizon`/`action_dim` survive save/load.
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


def _float_chunks(chunks) -> np.ndarray:
    """The dtype the reference's DCT runs in: float32 for float16/float32 input, float64 otherwise."""
    chunks = np.asarray(chunks)
    return chunks.astype(np.float32 if chunks.dtype in (np.float16, np.float32) else np.float64, copy=False)


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
        clip=False,
        **kwargs,
    ):
        self.scale = float(scale)
        self.vocab_size = int(vocab_size)
        self.min_token = int(min_token)
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.clip = bool(clip)
        super().__init__(bpe_tokenizer=bpe_tokenizer)
        vocab = self.bpe_tokenizer.backend_tokenizer.get_vocab()
        if max_token is None:  # the reference's initial alphabet is chr(0 .. max_token - min_token)
            end = 0
            while chr(end) in vocab:
                end += 1
            max_token = self.min_token + end - 1
        self.max_token = int(max_token)
        symbols = _byte_symbols()
        inverse = {s: b for b, s in enumerate(symbols)}
        self._token_bytes = {
            i: bytes(inverse[c] for c in t) if all(c in inverse for c in t) else t.encode("utf-8")
            for t, i in vocab.items()
        }
        self._emit_code = self._emit_table({symbols[b] for b in range(256) if symbols[b] in vocab})

    def _emit_table(self, spelled_bytes):
        """For each code point of the fitted range, the nearest one whose UTF-8 bytes the BPE can spell."""
        symbols = _byte_symbols()
        codes = np.arange(self.max_token - self.min_token + 1)
        emit = np.array([all(symbols[b] in spelled_bytes for b in chr(c).encode("utf-8")) for c in codes])
        ok = codes[emit]
        idx = np.clip(np.searchsorted(ok, codes), 1, len(ok) - 1) if len(ok) > 1 else np.zeros_like(codes)
        left, right = ok[np.maximum(idx - 1, 0)], ok[idx]
        out = np.where(np.abs(codes - left) <= np.abs(right - codes), left, right)
        out[emit] = codes[emit]
        return out

    def _codes(self, chunks):
        coeff = dct(chunks, axis=1, norm="ortho")
        v = np.around(coeff * coeff.dtype.type(self.scale)).reshape(len(chunks), -1).astype(np.float64)
        v -= self.min_token
        fitted = self._emit_code[np.where(v > 0, np.minimum(v, len(self._emit_code) - 1), 0).astype(np.int64)]
        spelled = (v < 0xD800) | ((v > 0xDFFF) & (v <= 0x10FFFF))
        return np.where(self.clip | ~spelled, fitted, np.maximum(np.where(spelled, v, 0), 0)).astype(np.int64)

    def __call__(self, action_chunk):
        """Chunks `[N, H, D]` (or one `[H, D]` chunk) -> list of id lists."""
        chunks = _float_chunks(action_chunk)
        if chunks.ndim == 2:
            chunks = chunks[None]
        codes = self._codes(chunks)
        length = codes.shape[1]
        text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
        strings = [text[i * length : (i + 1) * length] for i in range(len(codes))]
        return [e.ids for e in self.bpe_tokenizer.backend_tokenizer.encode_batch_fast(strings)]

    def decode(self, tokens, time_horizon=None, action_dim=None, on_invalid="zeros", return_valid=False):
        """Id lists -> chunks `[N, H, D]`; invalid sequences become zeros (or are repaired when
        `on_invalid="relaxed"`)."""
        horizon = time_horizon or self.time_horizon
        dim = action_dim or self.action_dim
        if horizon is None or dim is None:
            raise ValueError("time_horizon and action_dim are unknown: pass them to decode()")
        if len(tokens) and np.ndim(tokens[0]) == 0:
            tokens = [tokens]
        n_coeff = horizon * dim
        out = np.zeros((len(tokens), n_coeff))
        valid = np.zeros(len(tokens), dtype=bool)
        for i, seq in enumerate(tokens):
            values = np.asarray(seq, dtype=np.float64)
            ids = [int(t) for t in values if np.isfinite(t) and t == int(t) and int(t) in self._token_bytes]
            raw = b"".join(self._token_bytes[t] for t in ids)
            try:
                text, ok = raw.decode("utf-8"), len(ids) == len(values)
            except UnicodeDecodeError:
                text, ok = raw.decode("utf-8", errors="replace"), False
            points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
            coeff = np.where(ok | (points != 0xFFFD), points + self.min_token, 0)
            valid[i] = ok and len(points) == n_coeff
            if valid[i] or on_invalid == "relaxed":
                out[i, : min(len(coeff), n_coeff)] = coeff[:n_coeff]
        actions = idct(out.reshape(-1, horizon, dim) / self.scale, axis=1, norm="ortho")
        return (actions, valid) if return_valid else actions

    def fit(self, action_data, scale=None, vocab_size=None, time_horizon=None, action_dim=None, clip=None):
        """Train a new processor on chunks `[N, H, D]` (or a list of `[H, D]` arrays)."""
        scale = self.scale if scale is None else float(scale)
        vocab_size = self.vocab_size if vocab_size is None else int(vocab_size)
        chunks = _float_chunks(action_data)
        coeff = dct(chunks, axis=1, norm="ortho")
        coeff = np.around(coeff * coeff.dtype.type(scale)).astype(np.int64).reshape(len(chunks), -1)
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
            clip=self.clip if clip is None else clip,
        )
