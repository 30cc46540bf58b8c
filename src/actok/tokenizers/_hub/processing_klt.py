"""klt action tokenizer (learned orthonormal transform + dead-zone quantization + BPE) for
`transformers.AutoProcessor`, written by actok.

Loaded with `AutoProcessor.from_pretrained(folder, trust_remote_code=True)`. Self-contained (numpy, tokenizers,
transformers); it gives the same ids and reconstructions as `actok.load_tokenizer(folder)`.

`processor(chunks)` -> list of id lists, for normalized chunks `[N, H, D]` (or one `[H, D]` chunk);
`processor.decode(tokens)` -> array `[N, H, D]`. Every sequence of ids in the vocabulary decodes: its symbols are
the quantized coefficients in order (a value in [-T, T] is one symbol; a larger one a carry symbol k, worth
k (2T + 1), then the symbol of the rest), the sequence's end is the end of block (later coefficients are zero),
coefficients past the K coded ones are ignored, and the values are clipped into each dim's training range. Only
ids outside the vocabulary make a sequence invalid: it decodes to zeros, or with `on_invalid="relaxed"` without
those ids. The transform (mean, basis `[H·D, K]`, value ranges; for a separable transform also its factors
time_basis `[H, H]`, dim_basis `[D, D]` and order `[K]`, the basis being kron(time_basis, dim_basis)[:, order]) is
in klt_basis.npz beside this file.
"""

from __future__ import annotations

import numpy as np
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

BASE = 0x100  # code point of the smallest coefficient symbol
BASIS_FILE = "klt_basis.npz"
MAX_QUANTIZED = 2.0**62  # quantized magnitudes stop here (beyond the symbol layout): no int64 wrap-around
F32_MIN_SIZE = 256  # H·D from which encode uses the float32 product (near-edge coefficients in float64)
F32_BOUND_SAFETY = 1.1  # times the float32 error bound: nearer a quantization edge, recomputed in float64
DECODE_GROUP = 256  # decode multiplies the rows, sorted by their coefficient count, in groups of this many
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


class KLTActionProcessor(ProcessorMixin):
    attributes = ("bpe_tokenizer",)  # transformers 4.x
    bpe_tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        bpe_tokenizer,
        scale=10.0,
        deadzone=0.7,
        half_width=1,
        max_carry=0,
        time_horizon=None,
        action_dim=None,
        **kwargs,
    ):
        self.scale, self.deadzone = float(scale), float(deadzone)
        self.half_width, self.max_carry = int(half_width), int(max_carry)
        self.time_horizon, self.action_dim = time_horizon, action_dim
        super().__init__(bpe_tokenizer=bpe_tokenizer)
        vocab = self.bpe_tokenizer.backend_tokenizer.get_vocab()
        self._n_vocab = max(vocab.values()) + 1
        self._symbols = [np.zeros(0, dtype=np.int64)] * self._n_vocab
        for token, i in vocab.items():
            self._symbols[i] = np.array([ord(c) - BASE for c in token], dtype=np.int64)
        self.mean = self.basis = self.rows32 = self.value_low = self.value_high = None
        self.time_basis = self.dim_basis = self.order = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        with np.load(cached_file(pretrained_model_name_or_path, BASIS_FILE, **hub)) as data:
            processor.mean, processor.basis = data["mean"], data["basis"]
            processor.rows32 = np.ascontiguousarray(processor.basis.T, dtype=np.float32)  # decode's, as actok's
            processor.value_low, processor.value_high = data["value_low"], data["value_high"]
            if "order" in data.files:  # a separable transform: two small products instead of the basis
                processor.time_basis, processor.dim_basis = data["time_basis"], data["dim_basis"]
                processor.order = data["order"].astype(np.int64)
        return processor

    def __call__(self, action_chunk):
        """Normalized chunks `[N, H, D]` (or one `[H, D]` chunk) -> list of id lists."""
        chunks = np.asarray(action_chunk, dtype=np.float64)
        if chunks.ndim == 2:
            chunks = chunks[None]
        shape = (self.time_horizon, self.action_dim)
        if chunks.ndim != 3 or chunks.shape[1:] != shape:
            raise ValueError(f"this processor encodes chunks [N, {shape[0]}, {shape[1]}] or one [{shape[0]}, "
                             f"{shape[1]}], got an array of shape {chunks.shape}")  # fmt: skip
        if not np.isfinite(chunks).all():
            raise ValueError("action chunks contain NaN or inf values")
        centered = chunks.reshape(len(chunks), -1) - self.mean
        if self.order is None and centered.shape[1] < F32_MIN_SIZE:
            c = centered @ self.basis * self.scale
        elif self.order is None:
            c = self._edge_exact(centered) * self.scale
        else:
            n, h, d = len(centered), len(self.time_basis), len(self.dim_basis)
            y = (centered.reshape(n * h, d) @ self.dim_basis).reshape(n, h, d).transpose(1, 0, 2).reshape(h, n * d)
            z = (self.time_basis.T @ y).reshape(h, n, d)
            c = z.transpose(1, 0, 2).reshape(n, h * d)[:, self.order] * self.scale
        modulus, k = 2 * self.half_width + 1, self.max_carry
        limit = k * modulus + self.half_width
        magnitude = np.minimum(np.abs(c) + 1.0 - self.deadzone, MAX_QUANTIZED)
        q = np.clip((np.sign(c) * np.floor(magnitude)).astype(np.int64), -limit, limit)
        strings = []
        for row in q.tolist():
            while row and row[-1] == 0:  # the end of the string is the end of block
                row.pop()
            symbols = []
            for v in row:
                carry = round(v / modulus)
                if carry:
                    symbols.append(modulus + carry + k - (carry > 0))
                symbols.append(v - carry * modulus + self.half_width)
            strings.append("".join(chr(BASE + x) for x in symbols))
        return [e.ids for e in self.bpe_tokenizer.backend_tokenizer.encode_batch_fast(strings)]

    def decode(self, tokens, time_horizon=None, action_dim=None, on_invalid="zeros", return_valid=False):
        """Id lists -> chunks `[N, H, D]`; a sequence holding ids outside the vocabulary is invalid and decodes to
        zeros (or, with `on_invalid="relaxed"`, without those ids)."""
        if len(tokens) and np.ndim(tokens[0]) == 0 and np.asarray(tokens[0]).dtype.kind in "iuf":
            tokens = [tokens]
        horizon, dim = self.time_horizon, self.action_dim
        if (time_horizon or horizon, action_dim or dim) != (horizon, dim):
            raise ValueError(f"this processor decodes chunks of time_horizon {horizon} and action_dim {dim} only")
        rows, valid = [], np.zeros(len(tokens), dtype=bool)
        for i, seq in enumerate(tokens):
            values = _row_values(seq)
            known = np.isfinite(values) & (values >= 0) & (values < self._n_vocab) & (values == np.floor(values))
            valid[i] = known.all()
            ids = values[known].astype(np.int64).tolist()
            symbols = np.concatenate([self._symbols[t] for t in ids]).tolist() if ids else []
            rows.append(self._coefficients(symbols)[: self.basis.shape[1]])
        counts = np.array([len(row) for row in rows], dtype=np.int64)
        q = np.zeros((len(rows), max(counts, default=0)), dtype=np.int64)  # the zero tail is not multiplied
        for i, row in enumerate(rows):
            q[i, : len(row)] = row
        c = (q + np.sign(q) * (self.deadzone - 0.5)) / self.scale
        actions = self._to_chunks(c, counts).reshape(len(q), horizon, dim)
        np.maximum(actions, self.value_low, out=actions)
        np.minimum(actions, self.value_high, out=actions)
        if on_invalid != "relaxed":
            actions[~valid] = 0.0
        return (actions, valid) if return_valid else actions

    def _edge_exact(self, centered):
        """actok's coefficients on a dense basis of F32_MIN_SIZE values and more: the float32 product, each
        coefficient within its float32 error bound of a quantization edge (or not finite) recomputed in float64,
        summed term by term in order."""
        with np.errstate(over="ignore", invalid="ignore"):
            c = (centered.astype(np.float32) @ self.basis.astype(np.float32)).astype(np.float64)
            tol = F32_BOUND_SAFETY * (centered.shape[1] + 2) * (np.finfo(np.float32).eps / 2) * self.scale
            tol = tol * np.sqrt((centered**2).sum(axis=1))[:, None]
            edge = np.abs(c * self.scale) + 1.0 - self.deadzone
            edge -= np.floor(edge)
            rows, cols = np.nonzero(~((edge >= tol) & (edge <= 1.0 - tol)))
        for start in range(0, len(rows), 8192):
            r, t = rows[start : start + 8192], cols[start : start + 8192]
            c[r, t] = np.cumsum(centered[r] * self.basis.T[t], axis=1)[:, -1]
        return c

    def _to_chunks(self, c, counts):
        """Coefficients `[N, L]` (row i holds counts[i]) -> chunks `[N, H·D]` before the clip, as actok computes
        them: the separable products in float64, or the float32 basis product over the rows sorted by count."""
        n = len(c)
        if self.order is not None:  # in float32, as the dense product
            h, d = len(self.time_basis), len(self.dim_basis)
            full = np.zeros((n, h * d), dtype=np.float32)
            full[:, self.order[: c.shape[1]]] = c
            z = np.ascontiguousarray(full.reshape(n, h, d).transpose(1, 0, 2)).reshape(h, n * d)
            w = (self.time_basis.astype(np.float32) @ z).reshape(h * n, d) @ self.dim_basis.astype(np.float32).T
            return w.reshape(h, n, d).transpose(1, 0, 2).reshape(n, h * d) + self.mean
        x = np.empty((n, len(self.mean)))
        rows = np.argsort(counts, kind="stable")
        for start in range(0, n, DECODE_GROUP):
            group = rows[start : start + DECODE_GROUP]
            width = int(counts[group[-1]])
            x[group] = c[group, :width].astype(np.float32) @ self.rows32[:width] + self.mean
        return x

    def _coefficients(self, symbols):
        """Symbols -> coefficients: carries add up until the next value symbol; a final carry is ignored."""
        modulus, k = 2 * self.half_width + 1, self.max_carry
        limit = k * modulus + self.half_width
        out, carry = [], 0
        for x in symbols:
            if x >= modulus:
                c = x - modulus
                carry += c - k + (c >= k)
            else:
                out.append(min(max(x - self.half_width + carry * modulus, -limit), limit))
                carry = 0
        return out


def _row_values(seq):
    """A row of ids as float64 values `[L]`; a row that is not a flat sequence of numbers (a string, None, nested
    or ragged lists, Python ints beyond int64) as a NaN scalar: no ids, invalid (as in actok)."""
    try:
        values = np.asarray(seq)
    except (ValueError, TypeError, OverflowError):
        return np.array(np.nan)
    return values.astype(np.float64) if values.ndim == 1 and values.dtype.kind in "iuf" else np.array(np.nan)
