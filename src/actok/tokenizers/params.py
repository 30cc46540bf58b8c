"""Tokenizer constructor parameters: declared once, in the constructor's signature, and checked in one place.

A parameter's annotation states its type and its valid values with `typing.Annotated` and `annotated_types`
constraints, e.g. `n_bins: Annotated[int, Interval(ge=2, le=MAX_VOCAB)] = 256`. `ActionTokenizer` wraps every
subclass constructor with `checked_init`, so `create_tokenizer`, the command line, `load` and direct construction
refuse a bad value with the same one-sentence `ActokError` (the parameter, the value and what is valid), and the
constructor body receives clean Python values (`int` for `np.int64(3)`, a list for a tuple).

Understood annotations: `int`, `float` (finite), `bool`, `str`, `dict`, `Literal[...]`, unions of these and
`list[X]`, refined by `Gt`/`Ge`/`Lt`/`Le`/`Interval` (numbers), `Len` (lists), `OneOf` and `Matches` (strings).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
import numpy as np

from actok.errors import ActokError

# Vocabulary-sized parameters (vocab_size, n_bins, codebook sizes, and every tokenizer's vocab_size) stay at or
# below 2**15: BPE symbols then stay below the UTF-16 surrogates (U+D800, which a Python string cannot hold), and
# far from the sizes at which the BPE trainer's up-front allocation aborts the process (about 70 bytes per entry:
# vocab_size=10**9 asks for 70 GB and kills Python).
MAX_VOCAB = 2**15
MAX_QUANTIZED = 2.0**62  # klt's quantized magnitudes stop here (far beyond any symbol layout): no int64 wrap
# Coefficients times the scale stay far inside int64 (and a finer step than 1e-6 is below any sensor's noise).
MAX_SCALE = 1e6

# Parameters several tokenizers share.
VocabSize = Annotated[int, at.Interval(ge=2, le=MAX_VOCAB)]  # size of a learned (BPE) vocabulary
Bins = Annotated[int, at.Interval(ge=2, le=MAX_VOCAB)]  # quantization levels per value, one token id each
Scale = Annotated[float, at.Interval(gt=0, le=MAX_SCALE)]  # coefficient multiplier before rounding


@dataclass(frozen=True)
class OneOf:
    """The value is one of `choices`."""

    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Matches:
    """The string matches `pattern` entirely; `description` says what that means to a user."""

    pattern: str
    description: str


class _Mismatch(Exception):
    """A value does not fit an annotation (turned into an ActokError that names the parameter)."""


def convert(hint: Any, value: Any) -> Any:
    """`value` as the clean Python value `hint` describes; raises `_Mismatch` when it does not fit."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        out = convert(base, value)
        if not all(_satisfies(c, out) for c in _constraints(metadata)):
            raise _Mismatch
        return out
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return convert(arm, value)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is Literal:
        for choice in typing.get_args(hint):
            if type(value) is type(choice) and value == choice:
                return choice
        raise _Mismatch
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [convert(item, v) for v in value]
    if hint is bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    is_bool = isinstance(value, (bool, np.bool_))
    if hint is int and isinstance(value, (int, np.integer)) and not is_bool:
        return int(value)
    if hint is float and isinstance(value, (int, float, np.integer, np.floating)) and not is_bool:
        try:
            out = float(value)
        except OverflowError:  # an int beyond the float range
            raise _Mismatch from None
        if math.isfinite(out):
            return out
    if hint in (str, dict) and isinstance(value, hint):
        return value
    if hint is None or hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if hint not in (bool, int, float, str, dict):
        raise TypeError(f"unsupported parameter annotation {hint!r}")
    raise _Mismatch


def describe(hint: Any) -> str:
    """What `convert` accepts, in words (for error messages)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *metadata = typing.get_args(hint)
        constraints = _constraints(metadata)
        if typing.get_origin(base) is list:
            return f"a list of {_length_words(constraints)}, each {describe(typing.get_args(base)[0])}"
        choices = next((c.choices for c in constraints if isinstance(c, OneOf)), None)
        if choices is not None:
            shown = ", ".join(map(str, choices[:12]))
            return f"one of {shown}" + (f", ... ({len(choices)} choices)" if len(choices) > 12 else "")
        words = [_range_words(constraints), *(c.description for c in constraints if isinstance(c, Matches))]
        return " ".join([describe(base), *filter(None, words)])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arm) for arm in typing.get_args(hint))
    if origin is Literal:
        return " or ".join(repr(choice) for choice in typing.get_args(hint))
    if origin is list:
        return f"a list of values, each {describe(typing.get_args(hint)[0])}"
    words = {bool: "True or False", int: "an integer", float: "a finite number", str: "a string", dict: "an object"}
    return words.get(hint, "null")


def check_value(subject: str, hint: Any, value: Any) -> Any:
    """`value` converted to what `hint` describes, or `ActokError` "{subject} must be ..., got ..."."""
    try:
        return convert(hint, value)
    except _Mismatch:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ActokError(f"{subject} must be {describe(hint)}, got {shown}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in file `path`, or `ActokError` naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActokError(f"{path} is missing") from None
    except OSError as exc:
        raise ActokError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ActokError(f"{path} is not a text file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise ActokError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")
        raise ActokError(f"{path} must hold a JSON object, not a JSON {kind}")
    return data


def check_fields(path: Path | str, data: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """`data[k]` converted to `fields[k]` (an annotation) for every k, or `ActokError` naming the file and the
    field; a field may be absent only when its annotation admits None."""
    out = {}
    for key, hint in fields.items():
        if key not in data:
            try:
                out[key] = convert(hint, None)
            except _Mismatch:
                raise ActokError(f"{path} lacks the field {key!r}") from None
        else:
            out[key] = check_value(f"{path}: {key}", hint, data[key])
    return out


def declared_parameters(cls: type) -> dict[str, Any]:
    """Constructor parameters of a class -> their annotations, in signature order, including those a subclass
    forwards with `**kwargs` to its base class (the learned tokenizers' training arguments)."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = inspect.unwrap(vars(klass)["__init__"])
        hints = _hints(init)
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        for p in params:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in out:
                if p.name not in hints:
                    raise TypeError(f"{klass.__qualname__}.__init__ parameter {p.name} has no annotation to check")
                out[p.name] = hints[p.name]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def checked_init(init: Callable[..., None], finish: Callable[[Any], None] | None = None) -> Callable[..., None]:
    """Wrap a tokenizer constructor: every argument (defaults included) is checked against its annotation and
    converted before `init` runs; arguments `init` forwards with `**kwargs` are checked by its base class's
    (wrapped) constructor. `finish(self)` runs after the outermost constructor (checks across parameters). The
    instance's class `name` is the tokenizer named in errors."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        owner = getattr(type(self), "name", type(self).__name__)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            valid = ", ".join(declared_parameters(type(self)))
            raise ActokError(f"bad parameters for tokenizer {owner!r}: {exc}; valid parameters: {valid}") from None
        bound.apply_defaults()
        hints = _hints(init)
        for name, p in list(signature.parameters.items())[1:]:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                bound.arguments[name] = check_value(f"{owner} parameter {name}", hints[name], bound.arguments[name])
        init(*bound.args, **bound.kwargs)
        if finish is not None and type(self).__init__ is __init__:
            finish(self)

    return __init__


@functools.cache
def _hints(init: Callable[..., None]) -> dict[str, Any]:
    return typing.get_type_hints(init, include_extras=True)


def _constraints(metadata: list[Any]) -> list[Any]:
    """Annotated metadata with grouped constraints (`Interval`, `Len`) split into single ones."""
    return [c for m in metadata for c in (m if isinstance(m, at.GroupedMetadata) else [m])]


def _satisfies(c: Any, value: Any) -> bool:
    if isinstance(c, at.Gt):
        return value > c.gt
    if isinstance(c, at.Ge):
        return value >= c.ge
    if isinstance(c, at.Lt):
        return value < c.lt
    if isinstance(c, at.Le):
        return value <= c.le
    if isinstance(c, at.MinLen):
        return len(value) >= c.min_length
    if isinstance(c, at.MaxLen):
        return len(value) <= c.max_length
    if isinstance(c, OneOf):
        return value in c.choices
    if isinstance(c, Matches):
        return re.fullmatch(c.pattern, value) is not None
    raise TypeError(f"unsupported parameter constraint {c!r}")


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**63 else f"{v:g}"


def _range_words(constraints: list[Any]) -> str:
    """Gt/Ge/Lt/Le -> "in [2, 32768]", "in (0, 1]", ">= 1" (empty without bounds)."""
    low = [f"({_number(c.gt)}" for c in constraints if isinstance(c, at.Gt)]
    low += [f"[{_number(c.ge)}" for c in constraints if isinstance(c, at.Ge)]
    high = [f"{_number(c.lt)})" for c in constraints if isinstance(c, at.Lt)]
    high += [f"{_number(c.le)}]" for c in constraints if isinstance(c, at.Le)]
    if low and high:
        return f"in {low[0]}, {high[0]}"
    if low:
        return (">" if low[0][0] == "(" else ">=") + " " + low[0][1:]
    if high:
        return ("<" if high[0][-1] == ")" else "<=") + " " + high[0][:-1]
    return ""


def _length_words(constraints: list[Any]) -> str:
    low = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), 0)
    high = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    if high is None:
        return f"{low} or more values"
    return f"exactly {low} values" if low == high else f"{low} to {high} values"
