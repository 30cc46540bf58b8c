"""The tokenizer contract as runnable checks: actok's analogue of scikit-learn's `check_estimator`.

    from actok.testing import check_tokenizer
    check_tokenizer(MyTokenizer)                 # every check, on the bundled Push-T chunks [N, 10, 2]
    check_tokenizer(MyTokenizer(n_bins=64), chunks=my_chunks)

A tokenizer class declares what the checks need (see `ActionTokenizer`): `conformance_params`, small and fast
constructor parameters for the checks' fits; `conformance_rmse_bound`, the round-trip RMSE it guarantees on the
held-out chunks; `conformance_decode_atol`, how far a batch decode may differ from decoding row by row. Reading
them from an instance lets a caller override them (`tok.conformance_rmse_bound = 0.1`).

Each check is a function of a `ConformanceCase` (the tokenizer's class and parameters, the chunks, and one fitted
instance shared by the checks); `CHECKS` maps their names to them, `iter_checks` yields them ready to run, and
`check_tokenizer` runs them all. A failing check raises `AssertionError` naming the tokenizer, the check and what
was wrong.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import shutil
import tempfile
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import annotated_types as at
import numpy as np

from actok.errors import ActokError, ActokWarning
from actok.tokenizers import available_tokenizers, get_tokenizer_class, load_tokenizer
from actok.tokenizers.base import ActionTokenizer, InvalidTokensError, as_chunks
from actok.tokenizers.params import OneOf, check_value, declared_parameters

HOLDOUT_SHARE = 0.2  # of the chunks given as one array: the last fifth is held out


@functools.cache
def default_chunks() -> tuple[np.ndarray, np.ndarray]:
    """(train `[N, 10, 2]`, held-out `[M, 10, 2]`) normalized chunks of the bundled Push-T dataset (20% of the
    windows of each episode; held-out episodes apart), the chunks every registered tokenizer's bound is declared on."""
    from importlib import resources

    from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks

    root = Path(str(resources.files("actok") / "example_data" / "pusht"))
    chunks = build_chunks(LeRobotDatasetReader(root), ChunkConfig(action_horizon=10, sample_fraction=0.2))
    return chunks.train, chunks.holdout


class ConformanceCase:
    """One tokenizer under test: its class and constructor parameters, the chunks the checks use, and one fitted
    instance, fitted on first use and shared by the checks.

    Args:
        tokenizer: an `ActionTokenizer` subclass (built with its `conformance_params`) or an instance (its
            `get_params()` are used; the instance itself is never fitted or changed).
        chunks: normalized chunks `[N, H, D]` (the last fifth is held out), a pair (train, held-out), or None
            for the bundled Push-T chunks (`default_chunks`).
    """

    def __init__(self, tokenizer: type[ActionTokenizer] | ActionTokenizer, chunks: Any = None):
        if isinstance(tokenizer, type) and issubclass(tokenizer, ActionTokenizer):
            self.cls, self.params = tokenizer, dict(tokenizer.conformance_params)
        elif isinstance(tokenizer, ActionTokenizer):
            self.cls, self.params = type(tokenizer), tokenizer.get_params()
        else:
            raise ActokError(
                f"check_tokenizer takes an ActionTokenizer subclass or instance, got {type(tokenizer).__name__}"
            )
        self.declarations = tokenizer
        self.name = getattr(self.cls, "name", self.cls.__name__)
        # copies: the caller's arrays (and the cached default ones) stay untouched whatever the tokenizer does
        self._train, self._holdout = (np.array(a) for a in _split(chunks))
        self._train_before = self._train.copy()
        self._fitted: ActionTokenizer | None = None

    @property
    def holdout(self) -> np.ndarray:
        """The held-out chunks `[M, H, D]`, a fresh copy each time: a tokenizer that writes to its input fails the
        input_not_mutated check, not every check."""
        return self._holdout.copy()

    @property
    def shape(self) -> tuple[int, int]:
        """The chunk shape (H, D)."""
        return self._holdout.shape[1], self._holdout.shape[2]

    @property
    def rmse_bound(self) -> float | None:
        return getattr(self.declarations, "conformance_rmse_bound", None)

    @property
    def decode_atol(self) -> float:
        return float(getattr(self.declarations, "conformance_decode_atol", 0.0))

    @property
    def registered(self) -> bool:
        """Whether the registry resolves the tokenizer's name to its class (create/load_tokenizer apply)."""
        return self.name in available_tokenizers() and get_tokenizer_class(self.name) is self.cls

    def new(self) -> ActionTokenizer:
        """A fresh, unfitted tokenizer with the case's parameters."""
        return self.cls(**self.params)

    def fit(self, tok: ActionTokenizer, **kwargs: Any) -> ActionTokenizer:
        """`tok.fit(train)`, quietly (a short training run warns that it stopped at max_epochs); the case's own
        training array, so that input_not_mutated sees what fit did to it."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ActokWarning)
            out = tok.fit(self._train, **kwargs)
        _expect(out is tok, f"fit must return the tokenizer itself (self), returned {type(out).__name__}")
        return tok

    @property
    def fitted(self) -> ActionTokenizer:
        """The case's tokenizer fitted on the training chunks (fitted once)."""
        if self._fitted is None:
            self._fitted = self.fit(self.new())
        return self._fitted

    def __repr__(self) -> str:
        return f"ConformanceCase({self.name}, train {self._train.shape}, held-out {self._holdout.shape})"


def _split(chunks: Any) -> tuple[np.ndarray, np.ndarray]:
    if chunks is None:
        return default_chunks()
    if isinstance(chunks, tuple) and len(chunks) == 2:
        train, holdout = as_chunks(chunks[0]), as_chunks(chunks[1])
        if train.shape[1:] != holdout.shape[1:]:
            raise ActokError(
                f"train and held-out chunks differ in shape [H, D]: {train.shape[1:]} and {holdout.shape[1:]}"
            )
    else:
        arr = as_chunks(chunks)
        n_holdout = max(2, int(len(arr) * HOLDOUT_SHARE))
        train, holdout = arr[:-n_holdout], arr[-n_holdout:]
    if len(train) < 10 or len(holdout) < 2:
        raise ActokError(
            f"the conformance checks need at least 10 training and 2 held-out chunks, got {len(train)} and "
            f"{len(holdout)}"
        )
    return train, holdout


# ----------------------------------------------------------------------------------------------- helpers
def _expect(condition: Any, message: str) -> None:
    """An assertion that survives `python -O`."""
    if not condition:
        raise AssertionError(message)


def _raises(kind: type[BaseException], call: Callable[[], Any], what: str, match: str | None = None) -> str:
    """Run `call`, which must raise `kind` (with `match` in its one-line message); return the message."""
    try:
        call()
    except kind as exc:
        message = str(exc)
        _expect("\n" not in message, f"{what}: the error must be one line, got {message!r}")
        _expect(match is None or match in message, f"{what}: expected {match!r} in the error, got {message!r}")
        return message
    except Exception as exc:
        raise AssertionError(f"{what}: expected {kind.__name__}, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{what}: expected {kind.__name__}, nothing was raised")


def _call(what: str, call: Callable[[], Any]) -> Any:
    """`call()`, with an exception it raises reported as an AssertionError saying what was called."""
    try:
        return call()
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _loaders(case: ConformanceCase) -> dict[str, Callable[[Path], ActionTokenizer]]:
    """The ways to load a saved folder: the class's `load`, and `load_tokenizer` for a registered tokenizer."""
    loaders = {f"{case.cls.__name__}.load": case.cls.load}
    if case.registered:
        loaders["load_tokenizer"] = load_tokenizer
    return loaders


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _ids_equal(a: list[list[int]], b: list[list[int]], what: str) -> None:
    if a != b:
        bad = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        x, y = (a[bad] if bad < len(a) else None), (b[bad] if bad < len(b) else None)
        raise AssertionError(f"{what}: ids differ (first at chunk {bad}: {x} vs {y})")


def _arrays_close(a: np.ndarray, b: np.ndarray, atol: float, what: str) -> None:
    _expect(a.shape == b.shape, f"{what}: shapes differ, {a.shape} vs {b.shape}")
    gap = float(np.max(np.abs(a - b), initial=0.0))
    _expect(gap <= atol, f"{what}: values differ by up to {gap:.3g} (conformance_decode_atol {atol:g})")


# ------------------------------------------------------------------------------------------- the checks
def check_round_trip_error_bound(case: ConformanceCase) -> None:
    """Held-out chunks encode to valid sequences that decode within the declared RMSE bound."""
    bound = case.rmse_bound
    _expect(
        bound is not None,
        f"{case.cls.__name__} declares no conformance_rmse_bound: set it to the round-trip RMSE it guarantees on "
        "the conformance chunks (with conformance_params)",
    )
    tok, x = case.fitted, case.holdout
    decoded, valid = tok.decode(tok.encode(case.holdout), return_valid=True)
    _expect(valid.all(), f"{np.count_nonzero(~valid)} of {len(x)} encodings of held-out chunks decode as invalid")
    rmse = _rmse(decoded, x)
    _expect(rmse <= bound, f"round-trip RMSE {rmse:.4g} on {len(x)} held-out chunks exceeds the bound {bound:g}")


def check_shapes_dtypes_and_vocab(case: ConformanceCase) -> None:
    """encode gives a list of lists of Python ints in [0, vocab_size); decode gives float64 `[N, H, D]` and a
    bool `[N]` mask."""
    tok, x = case.fitted, case.holdout[:17]
    ids = tok.encode(x)
    _expect(
        isinstance(ids, list) and len(ids) == len(x) and all(isinstance(s, list) for s in ids),
        f"encode of {len(x)} chunks must return a list of {len(x)} lists, got {type(ids).__name__}",
    )
    bad = [t for s in ids for t in s if type(t) is not int or not 0 <= t < tok.vocab_size]
    _expect(not bad, f"encode must give Python ints in [0, vocab_size={tok.vocab_size}), got {bad[:3]!r}")
    out = tok.decode(ids)
    _expect(isinstance(out, np.ndarray), f"decode must return a numpy array, got {type(out).__name__}")
    _expect(out.shape == x.shape and out.dtype == np.float64, f"decode gave {out.dtype} {out.shape}, not {x.shape}")
    out, valid = tok.decode(ids, return_valid=True)
    _expect(valid.shape == (len(x),) and valid.dtype == bool, f"the validity mask is {valid.dtype} {valid.shape}")


def check_save_load_gives_identical_ids(case: ConformanceCase) -> None:
    """A saved folder loads (through the class and, for a registered tokenizer, `load_tokenizer`) into a tokenizer
    with the same parameters, ids and decoded values."""
    tok, x = case.fitted, case.holdout
    ids = tok.encode(x)
    with tempfile.TemporaryDirectory() as tmp:
        folder = tok.save(Path(tmp) / "tok")
        for how, load in _loaders(case).items():
            loaded = load(folder)
            _expect(type(loaded) is type(tok), f"{how} gave a {type(loaded).__name__}, not a {type(tok).__name__}")
            _expect(
                loaded.get_params() == tok.get_params(),
                f"{how}: parameters {loaded.get_params()} differ from the saved {tok.get_params()}",
            )
            _ids_equal(loaded.encode(x), ids, f"after save and {how}")
            _arrays_close(loaded.decode(ids), tok.decode(ids), 0.0, f"after save and {how}, decode")


def check_batch_encode_equals_one_by_one(case: ConformanceCase) -> None:
    """Encoding (decoding) a batch gives what encoding (decoding) its chunks one at a time gives."""
    tok, x = case.fitted, case.holdout[:40]
    batch = tok.encode(x)
    _ids_equal(batch, [tok.encode(x[i : i + 1])[0] for i in range(len(x))], "batch encode vs one by one")
    single = np.concatenate([tok.decode([s]) for s in batch])
    _arrays_close(tok.decode(batch), single, case.decode_atol, "batch decode vs one by one")


def check_malformed_ids_do_not_raise(case: ConformanceCase) -> None:
    """Sequences that are not encodings (empty, negative, out of the vocabulary, cut, extended, huge) decode to
    finite values marked invalid (zeros under "zeros"); "raise" raises InvalidTokensError; an unknown policy is an
    ActokError listing the valid ones."""
    tok = case.fitted
    good = tok.encode(case.holdout[:1])[0]
    malformed = [[], [-1], [tok.vocab_size + 5] * 3, good[:-1], [*good, good[0]], [10**12], good]
    # Empty, cut and extended sequences of known ids are valid for a tokenizer where every sequence decodes.
    expected = np.array([tok.every_sequence_decodes, False, False, *[tok.every_sequence_decodes] * 2, False, True])
    shape = (len(malformed), *case.shape)
    for policy in ("zeros", "relaxed"):
        what = f"decode of [empty, [-1], beyond the vocabulary, cut, extended, huge id] (on_invalid={policy!r})"
        out, valid = _call(what, lambda p=policy: tok.decode(malformed, return_valid=True, on_invalid=p))
        _expect(out.shape == shape, f"on_invalid={policy!r}: decode gave shape {out.shape}, expected {shape}")
        _expect(np.isfinite(out).all(), f"on_invalid={policy!r}: decode gave non-finite values")
        _expect(
            (valid == expected).all(),
            f"on_invalid={policy!r}: validity {valid.tolist()} for [empty, [-1], beyond the vocabulary, cut, "
            f"extended, huge id, a real encoding], expected {expected.tolist()}",
        )
    zeros = tok.decode(malformed, on_invalid="zeros")
    _expect(not zeros[~expected].any(), 'on_invalid="zeros": invalid sequences must decode to zeros')
    _raises(InvalidTokensError, lambda: tok.decode(malformed, on_invalid="raise"), 'on_invalid="raise"')
    _raises(
        ActokError,
        lambda: tok.decode(malformed, on_invalid="ignore"),
        "an unknown policy",
        "valid: zeros, relaxed, raise",
    )


def check_wrong_shape_is_refused(case: ConformanceCase) -> None:
    """encode refuses chunks of another [H, D], naming the fitted shape, and arrays that are not [N, H, D]."""
    tok = case.fitted
    h, d = case.shape
    fitted = f"[H={h}, D={d}]"
    for shape in ((1, h + 1, d), (1, h, d + 1)):
        _raises(ActokError, lambda s=shape: tok.encode(np.zeros(s)), f"encode of chunks of shape {shape}", fitted)
    _raises(ActokError, lambda: tok.encode(np.zeros((h, d))), "encode of one [H, D] chunk", "[N, H, D]")


def check_empty_batches(case: ConformanceCase) -> None:
    """Zero chunks encode to [] and [] decodes to `[0, H, D]` with an empty mask."""
    tok = case.fitted
    _expect(tok.encode(case.holdout[:0]) == [], "encode of zero chunks must be []")
    out, valid = tok.decode([], return_valid=True)
    expected = (0, *case.shape)
    _expect(out.shape == expected and valid.shape == (0,), f"decode([]) gave {out.shape}, expected {expected}")


def check_parameter_declarations(case: ConformanceCase) -> None:
    """Every constructor parameter is declared (an annotation the checks understand, numbers with a range), its
    default satisfies its declaration, and `get_params` is JSON and rebuilds the same tokenizer
    (`create_tokenizer(name, **tok.get_params())` for a registered one)."""
    declared = declared_parameters(case.cls)
    for param, default in _defaults(case.cls).items():
        value = check_value(f"the default of parameter {param}", declared[param], default)
        _expect(
            value == (list(default) if isinstance(default, tuple) else default),
            f"the default of parameter {param}, {default!r}, is changed by its declaration into {value!r}",
        )
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            _expect(
                _is_bounded(declared[param]),
                f"parameter {param} is a number without a declared range: annotate it as "
                f"Annotated[{type(default).__name__}, Interval(ge=..., le=...)] so absurd values are refused",
            )
    for tok in (case.new(), case.fitted):
        params = tok.get_params()
        _expect(
            list(params) == list(declared), f"get_params() keys {list(params)} are not the parameters {list(declared)}"
        )
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"get_params() must be JSON-serializable (save writes it): {exc}") from None
        create = functools.partial(_create, case.name) if case.registered else case.cls
        _expect(
            create(**params).get_params() == params,
            f"rebuilding from get_params() {params} gives {create(**params).get_params()}",
        )


def check_bad_parameter_values_are_refused(case: ConformanceCase) -> None:
    """A value of the wrong type or outside the declared range is an ActokError naming the parameter and the
    value; an unknown parameter is an ActokError listing the valid ones."""
    declared = declared_parameters(case.cls)
    for param, default in _defaults(case.cls).items():
        for value in _bad_values(declared[param], default):
            message = _raises(ActokError, lambda p=param, v=value: case.cls(**{p: v}), f"parameter {param}={value!r}")
            _expect(
                f"parameter {param} must be" in message and message.endswith(f"got {value!r}"),
                f"parameter {param}={value!r}: the error must name the parameter and the value, got {message!r}",
            )
    _raises(
        ActokError,
        lambda: case.cls(no_such_parameter=1),
        "an unknown parameter",
        f"bad parameters for tokenizer '{case.name}'",
    )


def check_fit_takes_validation_chunks(case: ConformanceCase) -> None:
    """fit accepts `validation=` chunks; a tokenizer that does not train iteratively gives the same ids with it."""
    tok = case.fitted
    _expect("validation" in inspect.signature(tok.fit).parameters, "fit must accept validation= (held-out chunks)")
    if tok.uses_validation:
        return
    refit = case.fit(case.new(), validation=case.holdout)
    x = case.holdout[:20]
    _ids_equal(refit.encode(x), tok.encode(x), "fit with validation= (ignored by this tokenizer) vs without")


def check_fit_is_deterministic(case: ConformanceCase) -> None:
    """Two fits on the same chunks give the same ids and decoded values."""
    tok, x = case.fitted, case.holdout
    again = case.fit(case.new())
    ids = tok.encode(x)
    _ids_equal(again.encode(x), ids, "a second fit on the same chunks")
    _arrays_close(again.decode(ids), tok.decode(ids), 0.0, "a second fit on the same chunks, decode")


def check_not_fitted_error(case: ConformanceCase) -> None:
    """Before fit, encode and save raise an ActokError saying the tokenizer is not fitted; decode without a
    shape raises an ActokError."""
    tok = case.new()
    ids = case.fitted.encode(case.holdout[:2])
    _raises(ActokError, lambda: tok.encode(case.holdout[:2]), "encode before fit", "not fitted")
    with tempfile.TemporaryDirectory() as tmp:
        _raises(ActokError, lambda: tok.save(Path(tmp) / "tok"), "save before fit", "not fitted")
    _raises(ActokError, lambda: tok.decode(ids), "decode before fit")


def check_explicit_decode_shape(case: ConformanceCase) -> None:
    """decode with `horizon=` and `action_dim=` equal to the fitted shape (Python or numpy integers) gives the
    default decode; another shape gives that shape or one ActokError."""
    tok = case.fitted
    h, d = case.shape
    ids = tok.encode(case.holdout[:5])
    expected = tok.decode(ids)
    for args in ({"horizon": h, "action_dim": d}, {"horizon": np.int64(h), "action_dim": np.int32(d)}):
        _arrays_close(tok.decode(ids, **args), expected, 0.0, f"decode with {args}")
    for hh, dd in ((h + 1, d), (h, d + 1), (2 * h, d)):
        what = f"decode with horizon={hh}, action_dim={dd} (fitted [H={h}, D={d}])"
        try:
            out, valid = tok.decode(ids, horizon=hh, action_dim=dd, return_valid=True)
        except ActokError as exc:
            _expect("\n" not in str(exc), f"{what}: the error must be one line, got {str(exc)!r}")
            continue
        except Exception as exc:
            raise AssertionError(f"{what}: expected a result or ActokError, got {type(exc).__name__}: {exc}") from exc
        _expect(out.shape == (5, hh, dd) and np.isfinite(out).all(), f"{what}: gave shape {out.shape}")
        _expect(valid.shape == (5,), f"{what}: the validity mask has shape {valid.shape}")


def check_input_not_mutated(case: ConformanceCase) -> None:
    """fit, encode and decode leave their arguments as they were."""
    tok = case.fitted
    _expect(np.array_equal(case._train, case._train_before), "fit changed the chunks it was given")
    x = case.holdout[:10]
    before = x.copy()
    tok.encode(x)
    _expect(np.array_equal(x, before), "encode changed the chunks it was given")
    ids = tok.encode(x)
    kept = copy.deepcopy(ids)
    for policy in ("zeros", "relaxed"):
        tok.decode(ids, on_invalid=policy)
        _expect(ids == kept, f"decode (on_invalid={policy!r}) changed the id lists it was given")
    if len({len(row) for row in ids}) == 1:
        arr = np.array(ids)
        before = arr.copy()
        tok.decode(arr)
        _expect(np.array_equal(arr, before), "decode changed the id array it was given")


def check_corrupted_folder_is_refused(case: ConformanceCase) -> None:
    """Every file of a saved folder removed, emptied, truncated or overwritten: load raises one ActokError (or,
    for a file it does not need, gives the same tokenizer), never another exception."""
    tok = case.fitted
    x = case.holdout[:20]
    ids = tok.encode(x)
    loaders = _loaders(case)
    with tempfile.TemporaryDirectory() as tmp:
        folder = tok.save(Path(tmp) / "tok")
        files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
        for how, load in loaders.items():
            _raises(ActokError, lambda ld=load: ld(Path(tmp) / "missing"), f"{how} of a missing folder")
        for file in files:
            for corruption, corrupt in _CORRUPTIONS.items():
                broken = Path(tmp) / f"{file}-{corruption}".replace("/", "_")
                shutil.copytree(folder, broken)
                corrupt(broken / file)
                for how, load in loaders.items():
                    what = f"{how} of the saved folder with {file} {corruption}"
                    try:
                        loaded = load(broken)
                    except ActokError as exc:
                        _expect("\n" not in str(exc), f"{what}: the error must be one line, got {str(exc)!r}")
                        continue
                    except Exception as exc:
                        raise AssertionError(f"{what}: expected ActokError, got {type(exc).__name__}: {exc}") from exc
                    _ids_equal(loaded.encode(x), ids, f"{what} loaded without an error but")
                    _arrays_close(loaded.decode(ids), tok.decode(ids), 0.0, f"{what} loaded without an error but")


_CORRUPTIONS: dict[str, Callable[[Path], Any]] = {
    "removed": lambda p: p.unlink(),
    "emptied": lambda p: p.write_bytes(b""),
    "cut in half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "overwritten with garbage": lambda p: p.write_bytes(b"\x00\xff garbage {[" * 8),
}


def check_malformed_rows_are_invalid_and_good_rows_still_decode_exactly(case: ConformanceCase) -> None:
    """Rows of every malformed kind (None, strings, numbers, nested lists, booleans, NaN, huge or fractional ids,
    arrays of other dtypes) are invalid and finite, and do not change how the good rows beside them decode, in
    every form a caller may give a good row."""
    tok = case.fitted
    good_rows = tok.encode(case.holdout[:2])
    good = good_rows[0]
    alone = tok.decode(good_rows)
    malformed = _malformed_rows(tok, good)
    batch = [good, *malformed, tuple(good_rows[1]), np.array(good, dtype=np.int32), np.array(good, dtype=float)]
    batch += [[np.int64(t) for t in good], np.array(good, dtype=object)]
    n_bad = len(malformed)
    expected = np.concatenate([alone[:1], alone[1:2], *[alone[:1]] * 4])
    for policy in ("zeros", "relaxed"):
        what = f"decode of malformed rows beside good ones (on_invalid={policy!r})"
        out, valid = _call(what, lambda p=policy: tok.decode(batch, return_valid=True, on_invalid=p))
        _expect(out.shape == (len(batch), *case.shape), f"on_invalid={policy!r}: shape {out.shape}")
        _expect(np.isfinite(out).all(), f"on_invalid={policy!r}: non-finite values")
        wrong = [repr(malformed[i])[:40] for i in np.flatnonzero(valid[1 : 1 + n_bad])]
        _expect(not wrong, f"on_invalid={policy!r}: malformed rows marked valid: {wrong}")
        _expect(valid[0] and valid[1 + n_bad :].all(), f"on_invalid={policy!r}: good rows marked invalid")
        _arrays_close(
            out[[0, *range(1 + n_bad, len(batch))]],
            expected,
            case.decode_atol,
            f"on_invalid={policy!r}: good rows beside malformed ones",
        )
        if policy == "zeros":
            _expect(not out[1 : 1 + n_bad].any(), 'on_invalid="zeros": malformed rows must decode to zeros')
    _raises(InvalidTokensError, lambda: tok.decode(batch, on_invalid="raise"), 'on_invalid="raise"', "sequence 1")


def check_a_non_batch_raises_one_clear_error(case: ConformanceCase) -> None:
    """decode of something that is not a batch (None, a number, a string, a dict, a set, a 0-d array, an iterator)
    is one ActokError."""
    tok = case.fitted
    for ids in (None, 5, 2.5, "abc", {"a": [1]}, {1, 2}, np.array(3), iter([[1]])):
        _raises(
            ActokError,
            lambda i=ids: tok.decode(i, on_invalid="zeros"),
            f"decode({ids!r})",
            "ids must be a batch of token-id sequences",
        )


def check_one_flat_sequence_is_not_taken_for_a_batch(case: ConformanceCase) -> None:
    """decode of one flat sequence of ids (not wrapped in a batch) is an ActokError saying to pass [ids]."""
    tok = case.fitted
    good = tok.encode(case.holdout[:1])[0]
    for flat in (good, np.array(good)):
        message = _raises(ActokError, lambda f=flat: tok.decode(f, on_invalid="relaxed"), "decode of one flat sequence")
        _expect(
            f"one flat sequence of {len(good)} numbers" in message and "pass [ids]" in message,
            f"decode of one flat sequence: the error must say to pass [ids], got {message!r}",
        )


def check_decode_shape_must_be_positive_integers(case: ConformanceCase) -> None:
    """`horizon=` and `action_dim=` that are not positive integers are one ActokError naming the value."""
    tok = case.fitted
    good = tok.encode(case.holdout[:1])
    for arg in ("horizon", "action_dim"):
        for bad in (2.5, 0, -1, True, "3", [3], float("nan")):
            _raises(
                ActokError,
                lambda a=arg, b=bad: tok.decode(good, **{a: b}),
                f"decode with {arg}={bad!r}",
                f"{arg} must be an integer >= 1, got {bad!r}",
            )


def check_decode_arguments_are_checked(case: ConformanceCase) -> None:
    """`return_valid` must be a bool and `on_invalid` a known policy; ids may be a 2-D array."""
    tok = case.fitted
    h, d = case.shape
    good = tok.encode(case.holdout[:1])
    _raises(
        ActokError,
        lambda: tok.decode(good, return_valid="yes"),
        "return_valid='yes'",
        "return_valid must be True or False",
    )
    _raises(ActokError, lambda: tok.decode(good, on_invalid=None), "on_invalid=None", "unknown on_invalid policy None")
    out = tok.decode(np.asarray(good), horizon=np.int64(h), action_dim=np.int32(d))
    _arrays_close(out, tok.decode(good), 0.0, "decode of ids as a 2-D array")


def check_fuzzed_batches_never_raise(case: ConformanceCase) -> None:
    """Random batches of random rows (ids in and out of the vocabulary, mutated encodings, floats, NaN, huge
    integers, booleans, None, strings, nested lists, arrays of any dtype and shape) decode to finite values of
    the fitted shape under "zeros" and "relaxed" (a flat sequence of numbers is refused as not a batch)."""
    tok = case.fitted
    rng = np.random.default_rng(0)
    goods = tok.encode(case.holdout[:8])
    for _ in range(60):
        rows = [_random_row(rng, tok.vocab_size, goods) for _ in range(int(rng.integers(0, 7)))]
        flat = len(rows) > 0 and all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in rows)
        for policy in ("zeros", "relaxed"):
            what = f"decode({_short(rows)}, on_invalid={policy!r})"
            if flat:
                _raises(ActokError, lambda r=rows, p=policy: tok.decode(r, on_invalid=p), what, "one flat sequence")
                continue
            try:
                out, valid = tok.decode(rows, return_valid=True, on_invalid=policy)
            except Exception as exc:
                raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc
            shape = (len(rows), *case.shape)
            _expect(out.shape == shape and valid.shape == (len(rows),), f"{what}: gave shape {out.shape}")
            _expect(np.isfinite(out).all(), f"{what}: gave non-finite values")


CHECKS: dict[str, Callable[[ConformanceCase], None]] = {
    # the protocol: parameters, fit, encode and decode of good chunks
    "parameter_declarations": check_parameter_declarations,
    "bad_parameter_values_are_refused": check_bad_parameter_values_are_refused,
    "not_fitted_error": check_not_fitted_error,
    "input_not_mutated": check_input_not_mutated,
    "round_trip_error_bound": check_round_trip_error_bound,
    "shapes_dtypes_and_vocab": check_shapes_dtypes_and_vocab,
    "batch_encode_equals_one_by_one": check_batch_encode_equals_one_by_one,
    "wrong_shape_is_refused": check_wrong_shape_is_refused,
    "empty_batches": check_empty_batches,
    "malformed_ids_do_not_raise": check_malformed_ids_do_not_raise,
    "explicit_decode_shape": check_explicit_decode_shape,
    # saved folders
    "save_load_gives_identical_ids": check_save_load_gives_identical_ids,
    "corrupted_folder_is_refused": check_corrupted_folder_is_refused,
    # fitting
    "fit_is_deterministic": check_fit_is_deterministic,
    "fit_takes_validation_chunks": check_fit_takes_validation_chunks,
    # decode never surprises, whatever it is given
    "malformed_rows_are_invalid_and_good_rows_still_decode_exactly": (
        check_malformed_rows_are_invalid_and_good_rows_still_decode_exactly
    ),
    "a_non_batch_raises_one_clear_error": check_a_non_batch_raises_one_clear_error,
    "one_flat_sequence_is_not_taken_for_a_batch": check_one_flat_sequence_is_not_taken_for_a_batch,
    "decode_shape_must_be_positive_integers": check_decode_shape_must_be_positive_integers,
    "decode_arguments_are_checked": check_decode_arguments_are_checked,
    "fuzzed_batches_never_raise": check_fuzzed_batches_never_raise,
}


def run_check(case: ConformanceCase, check: str) -> None:
    """Run one check of `CHECKS` on `case`; any failure is an AssertionError naming the tokenizer and the check."""
    try:
        CHECKS[check](case)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
        raise AssertionError(f"tokenizer {case.name!r} fails the {check} check: {reason}") from exc


def iter_checks(
    tokenizer: type[ActionTokenizer] | ActionTokenizer, chunks: Any = None
) -> Iterator[tuple[str, Callable[[], None]]]:
    """(name, run) for every check of `CHECKS`, sharing one `ConformanceCase` (one fit) for `tokenizer`."""
    case = ConformanceCase(tokenizer, chunks)
    for name in CHECKS:
        yield name, functools.partial(run_check, case, name)


def check_tokenizer(tokenizer: type[ActionTokenizer] | ActionTokenizer, chunks: Any = None) -> None:
    """Run every conformance check on a tokenizer class (with its `conformance_params`) or instance (with its
    parameters), on `chunks` (`[N, H, D]`, or a (train, held-out) pair; default: the bundled Push-T chunks).

    Raises AssertionError naming the tokenizer, the first failing check and what was wrong."""
    for _, run in iter_checks(tokenizer, chunks):
        run()


# ------------------------------------------------------------------------------------ parameter values
def _create(name: str, **params: Any) -> ActionTokenizer:
    from actok.tokenizers import create_tokenizer

    return create_tokenizer(name, **params)


def _defaults(cls: type) -> dict[str, Any]:
    """Declared parameters that have a default, with it (those a subclass forwards to its base included)."""
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for p in inspect.signature(inspect.unwrap(vars(klass)["__init__"])).parameters.values():
                if p.default is not p.empty:
                    defaults[p.name] = p.default
    return {name: defaults[name] for name in declared_parameters(cls) if name in defaults}


def _flat_constraints(hint: Any) -> list[Any]:
    """The constraints of an `Annotated` hint (grouped ones such as `Interval` split), [] otherwise."""
    if typing.get_origin(hint) is not Annotated:
        return []
    meta = typing.get_args(hint)[1:]
    return [c for m in meta for c in (m if isinstance(m, at.GroupedMetadata) else [m])]


def _numeric_arm(hint: Any) -> Any:
    """The one number-typed arm of a (possibly union) hint, or None."""
    arms = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    numeric = [a for a in arms if _base(a) in (int, float)]
    return numeric[0] if len(numeric) == 1 else None


def _base(hint: Any) -> Any:
    """`X` of `Annotated[X, ...]`, else the hint itself."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _is_bounded(hint: Any) -> bool:
    """Whether a numeric parameter's declaration bounds it on both sides (or lists its values)."""
    arm = _numeric_arm(hint)
    if arm is None:
        return True  # a Literal or choices: every valid value is listed
    constraints = _flat_constraints(arm)
    if any(isinstance(c, OneOf) for c in constraints):
        return True
    return any(isinstance(c, (at.Gt, at.Ge)) for c in constraints) and any(
        isinstance(c, (at.Lt, at.Le)) for c in constraints
    )


def _outside(hint: Any) -> list[Any]:
    """Numbers just outside the declared range of a numeric hint."""
    arm = _numeric_arm(hint)
    if arm is None:
        return []
    out = []
    for c in _flat_constraints(arm):
        if isinstance(c, at.Gt):
            out.append(c.gt)
        elif isinstance(c, at.Ge):
            out.append(c.ge - 1)
        elif isinstance(c, at.Lt):
            out.append(c.lt)
        elif isinstance(c, at.Le):
            out.append(c.le + 1)
    return out


# Values of the wrong type for a parameter whose default is of the key's type (valid for none of them).
_WRONG_TYPE: dict[type, list[Any]] = {
    int: [2.5, True, "3", [3], None, float("nan")],
    float: [float("inf"), float("nan"), -float("inf"), True, "3", [1.0], None],
    bool: ["yes", 1, None, 0.0],
    str: [3, None, ["cpu"]],
    dict: [3, "x", None, []],
}


def _bad_values(hint: Any, default: Any) -> list[Any]:
    """Values a parameter declared as `hint` (with `default`) must refuse: wrong types, values beyond its range,
    an unlisted choice, lists of the wrong length or with bad items."""
    if isinstance(default, (list, tuple)):
        constraints = _flat_constraints(hint)
        (item,) = typing.get_args(_base(hint)) or (Any,)
        low = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), 0)
        high = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
        size = max(low, 1)
        out: list[Any] = [5, "x", None, [True] * size]
        out += [[v] * size for v in _outside(item)]
        if low >= 1:
            out.append([])
        if high is not None and len(default):
            out.append([default[0]] * (high + 1))
        if _base(item) is int:
            out.append([2.5] * size)
        return out
    kind = type(default)
    if kind not in _WRONG_TYPE:
        return []
    out = list(_WRONG_TYPE[kind]) + _outside(hint)
    if kind is str and default is not None and _has_choices(hint):
        out.append("no-such-value")
    return out


def _has_choices(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Literal:
        return True
    return any(not isinstance(c, (at.MinLen, at.MaxLen)) for c in _flat_constraints(hint))


def _malformed_rows(tok: ActionTokenizer, good: list[int]) -> list[Any]:
    """Rows that are not valid encodings, of every kind a caller might pass."""
    n = len(good)
    return [
        None,
        "abc",
        b"ab",
        3.5,
        7,
        {"a": 1},
        [[1, 2]],
        [good[0], [good[0]]],
        [1.5] * n,
        [float("nan")] * n,
        [2**70] * n,
        [2**1100] * n,
        [-1] * n,
        [True] * n,
        [None] * n,
        ["1"] * n,
        np.array([True] * n),
        np.array([str(t) for t in good]),
        np.array(good, dtype=complex),
        np.array([good, good]),
        np.array(good[0]),
        [tok.vocab_size] * n,
        *([] if tok.every_sequence_decodes else [[]]),  # empty: the mean chunk where every sequence decodes
    ]


_DTYPES = ["int8", "uint16", "int64", "uint64", "float32", "float64", "bool", "complex64", "U2"]


def _random_id(rng: np.random.Generator, vocab: int) -> Any:
    kind = rng.integers(5)
    if kind == 0:
        return int(rng.integers(-5, vocab + 5))
    if kind == 1:
        return int(rng.integers(-(2**62), 2**62)) * int(rng.integers(1, 2**18))
    if kind == 2:
        return float(rng.choice([np.nan, np.inf, -np.inf, rng.normal() * 10.0 ** rng.integers(0, 30)]))
    if kind == 3:
        return bool(rng.integers(2))
    return float(rng.integers(0, vocab)) + float(rng.choice([0.0, 0.5]))


def _random_row(rng: np.random.Generator, vocab: int, goods: list[list[int]]) -> Any:
    kind = rng.integers(9)
    n = int(rng.integers(0, 31))
    if kind == 0:  # a real encoding, with one id replaced, dropped or added
        row = list(goods[rng.integers(len(goods))])
        where = int(rng.integers(len(row) + 1))
        edit = rng.integers(3)
        if edit == 0 and row:
            row[min(where, len(row) - 1)] = int(rng.integers(-2, vocab + 2))
        elif edit == 1 and row:
            del row[min(where, len(row) - 1)]
        else:
            row.insert(where, int(rng.integers(0, vocab)))
        return row
    if kind == 1:
        return [int(v) for v in rng.integers(0, vocab + 5, size=n)]
    if kind == 2:
        return [_random_id(rng, vocab) for _ in range(n)]
    if kind == 3:
        extras = [None, "x", [1, 2], []]
        return [
            extras[rng.integers(len(extras))] if rng.random() < 0.3 else _random_id(rng, vocab) for _ in range(n % 7)
        ]
    if kind == 4:
        dtype = _DTYPES[rng.integers(len(_DTYPES))]
        shape = tuple(int(s) for s in rng.integers(0, 13, size=rng.integers(0, 3)))
        return np.abs(rng.normal(size=shape) * vocab).astype(dtype) if dtype != "U2" else np.full(shape, "7")
    if kind == 5:
        return None
    if kind == 6:
        return "".join(rng.choice(list("ab1 ")) for _ in range(n % 6))
    if kind == 7:
        return int(rng.integers(-(2**40), 2**40))
    return tuple(int(v) for v in rng.integers(0, vocab, size=n))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "CHECKS",
    "ConformanceCase",
    "check_tokenizer",
    "default_chunks",
    "iter_checks",
    "run_check",
]
