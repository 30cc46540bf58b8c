"""What to benchmark, from text: tokenizer lists, `KEY=VALUE` parameters and sweep grids (`NAME:KEY=V1,V2[;K2=...]`).

The grammar of `actok bench --tokenizer`, `--tokenizer-param` and `--sweep` (and of `actok train`'s tokenizer
flags), as functions a Python user can call too; `parse_tokenizers` returns `TokenizerSpec`s for `actok.bench.run`.
`SHARED_PARAMS` are the constructor parameters common enough to have their own flags; each goes to every
tokenizer that accepts it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from actok.bench.cells import TokenizerSpec
from actok.errors import ActokError
from actok.tokenizers import available_tokenizers, constructor_parameters, get_tokenizer_class, tokenizer_extra

# Constructor parameters with their own flags (`--vocab-size` ...): name -> (type, help).
SHARED_PARAMS: dict[str, tuple[type, str]] = {
    "vocab_size": (int, "vocabulary size (tokenizers that learn one)"),
    "scale": (float, "coefficient quantization scale (DCT/wavelet tokenizers)"),
    "n_bins": (int, "bins per value (binning tokenizers)"),
    "device": (str, "learned tokenizers: auto (GPU when present, else CPU), cpu, cuda, cuda:N"),
}


def parse_tokenizers(
    names: str | None,
    sweeps: Sequence[str] = (),
    shared: Mapping[str, Any] | None = None,
    items: Sequence[str] = (),
    saved: str | None = None,
) -> list[TokenizerSpec]:
    """What `actok bench --tokenizer NAMES --sweep S ... --tokenizer-param K=V ...` benchmarks: one spec per name
    (`tokenizer_names`; with sweeps and no names, none), then every cell of every sweep; `shared` and `items` are
    the parameters of each (`tokenizer_params`, with all the tokenizers named here as `others`). With `saved` (a
    saved tokenizer folder, `--action-tokenizer-path`), that tokenizer alone."""
    if saved:
        if names or sweeps:
            raise ActokError("pass either --action-tokenizer-path or --tokenizer/--sweep, not both")
        return [TokenizerSpec.saved(saved)]
    listed = tokenizer_names(names) if names is not None or not sweeps else []
    everyone = listed + [sweep_name(s) for s in sweeps]
    specs = [TokenizerSpec(n, tokenizer_params(n, shared, items, everyone)) for n in listed]
    return specs + [t for sweep in sweeps for t in sweep_tokenizers(sweep, shared, items, everyone)]


def tokenizer_names(text: str | None) -> list[str]:
    """`"binning,fast"` -> the names, each registered; `"all"` -> every tokenizer; None -> every tokenizer that
    needs no optional extra (bench's default)."""
    if text is None:
        return [n for n in available_tokenizers() if not tokenizer_extra(n)]
    if text.strip() == "all":
        return available_tokenizers()
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        get_tokenizer_class(n)  # raises with the valid names (or the missing extra)
    if not names:
        raise ActokError(f"--tokenizer is empty; valid tokenizers: {', '.join(available_tokenizers())}")
    return names


def tokenizer_params(
    name: str, shared: Mapping[str, Any] | None = None, items: Sequence[str] = (), others: Sequence[str] = ()
) -> dict[str, Any]:
    """Constructor parameters of tokenizer `name`: the `shared` ones it accepts (e.g. a vocabulary size given for
    every tokenizer), then `items` (`"KEY=VALUE"`, the value JSON or a plain string). With several tokenizers
    (`others`), an item goes to those that accept it and must be accepted by at least one."""
    accepted = constructor_parameters(name)
    params = {k: v for k, v in (shared or {}).items() if v is not None and k in accepted}
    for item in items:
        key, sep, raw = item.partition("=")
        if sep and key not in accepted and any(key in constructor_parameters(o) for o in others):
            continue  # meant for another of the tokenizers benchmarked together
        if not sep or key not in accepted:
            names = sorted({name, *others})
            valid = ", ".join(dict.fromkeys(k for n in names for k in constructor_parameters(n)))
            raise ActokError(
                f"bad --tokenizer-param {item!r}: expected KEY=VALUE with KEY one of {valid} "
                f"(parameters of {', '.join(names)})"
            )
        params[key] = json_value(raw)
    return params


def sweep_tokenizers(
    spec: str, shared: Mapping[str, Any] | None = None, items: Sequence[str] = (), others: Sequence[str] = ()
) -> list[TokenizerSpec]:
    """`'fast:scale=2,5;vocab_size=512,1024'` -> one `TokenizerSpec` per combination of the grid (on top of
    `tokenizer_params(name, shared, items, others)`), labelled with its parameters (`cell_label`)."""
    name, sep, grid = spec.partition(":")
    name = name.strip()
    if not sep or not grid.strip():
        raise ActokError(f"bad --sweep {spec!r}: expected NAME:KEY=V1,V2[;KEY2=...], e.g. 'fast:scale=2,5,10'")
    get_tokenizer_class(name)
    accepted = constructor_parameters(name)
    axes: dict[str, list[Any]] = {}
    for part in grid.split(";"):
        key, eq, values = part.partition("=")
        key = key.strip()
        if not eq or key not in accepted or not split_values(values):
            raise ActokError(
                f"bad --sweep {spec!r}: {part.strip()!r} is not KEY=V1,V2 with KEY one of {', '.join(accepted)}"
            )
        if key in axes:
            raise ActokError(f"bad --sweep {spec!r}: {key} is given twice; list all its values once, e.g. {key}=1,2,3")
        axes[key] = [json_value(v) for v in split_values(values)]
    base = tokenizer_params(name, shared, items, others)
    cells = [{**base, **dict(zip(axes, combo, strict=True))} for combo in itertools.product(*axes.values())]
    return [TokenizerSpec(name, params, cell_label(name, params)) for params in cells]


def sweep_name(spec: str) -> str:
    """The tokenizer a sweep is over: `'fast:scale=2,5'` -> `'fast'`."""
    return spec.partition(":")[0].strip()


def split_values(text: str) -> list[str]:
    """'2,5,[8,5,5]' -> ['2', '5', '[8,5,5]']: commas inside brackets belong to the value."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [v.strip() for v in [*out, current] if v.strip()]


def json_value(raw: str) -> Any:
    """A parameter value as JSON (numbers, lists, true/false); anything else is a plain string (e.g. `device=cpu`),
    except text that starts like JSON but does not parse, which is an error."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if raw.strip()[:1] in '[{"' or raw.strip()[:1].isdigit() or raw.strip()[:1] in "-.":
            raise ActokError(f"value {raw!r} is not valid JSON ({exc.msg}); e.g. 10, 0.5, [8,5,5] or true") from None
        return raw


def cell_label(name: str, params: Mapping[str, Any]) -> str:
    """A swept cell's name: `fast-scale2`, `bspline-degree2-n_control_points4` (parameters in key order)."""
    return name + "".join(f"-{k}{json.dumps(v).replace(' ', '')}" for k, v in sorted(params.items()))
