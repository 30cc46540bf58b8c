"""Normalization drift: run serving data through a saved pipeline and compare with what was measured at fit time.

A tokenizer fitted on actions normalized with one set of statistics and served with actions those statistics no
longer fit (another robot, another control mode) sees values outside [-1, 1]; a DCT tokenizer's coefficients
grow and its sequences get longer than fit time suggested, to be truncated at the model's maximum token length.
`profile` measures a pipeline on chunks; `actok train` records it in `fit_profile.json` (`profile_fit`,
`save_profile`); `check_dataset` profiles a serving dataset and `compare` judges it against `fit_baseline`.

The serving data is normalized with the SAVED normalizer (pipeline.json), never with statistics recomputed from
the serving dataset: drift is exactly the saved statistics no longer fitting it.

The fit-time baseline is every metric at its larger value over the training chunks and the held-out episodes
(per dim for the out-of-range shares): one split alone is a noisy reference (a held-out set of one or two
episodes can be much calmer or wilder than the rest of the dataset; the training chunks flatter tokenizers that
learned them). Thresholds (a check drifts when the serving value exceeds its limit):
- mean token length > 1.25x fit time, p99 token length > 1.5x fit time: a quarter more decode steps per chunk, and
  the tail that a max token length sized at fit time truncates;
- per dim, the share of values outside [-1, 1] BEFORE the normalizer's clip (QUANTILES clips to [q01, q99], which
  hides drift from the tokenizer) > 1.5x fit time + 2 points: quantile normalization puts about 2% outside by
  construction, statistics that do not fit put tens of percent outside;
- clipped coefficients (FAST, wavelet, KLT: values outside the fitted symbol range) > max(0.1%, 2x fit time), and
  invalid decodes of the pipeline's own encodings > max(0.5%, 2x fit time) (FAST, as the reference, drops the
  symbols of bytes its vocabulary lacks, and such a chunk cannot decode): also judged without a fit-time profile;
- RMSE of the chunks that decode > 2x fit time, in normalized units against the UNCLIPPED values, so values lost
  to clipping count.
Checked against every one of the shared datasets (FAST, binning, B-spline, KLT; QUANTILES, QUANTILE10, MEAN_STD,
MIN_MAX; four episode splits each), data from the fit-time dataset stays within 1.03x mean tokens, 1.2x p99,
1.12x RMSE and fit share + 0.3 points outside [-1, 1]; actions scaled 1.5x about their mean already exceed the
range and RMSE limits.

`max_token_len` to configure: ceil(1.1 * max(p99.9 of the serving lengths, the fit-time maximum)): 10% headroom
over a length at most 0.1% of the serving chunks exceed, never below what the fit-time data needed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from actok import __version__
from actok.codec import ActionCodec
from actok.data.chunks import dims_to_spec
from actok.data.lerobot import LeRobotDatasetReader
from actok.data.normalize import NormalizationMode, Normalizer
from actok.data.pipeline import ChunkConfig, ChunkSet, build_chunks
from actok.errors import ActokError
from actok.executor import check_engine

PROFILE_FILE = "fit_profile.json"

MEAN_TOKEN_RATIO = 1.25
P99_TOKEN_RATIO = 1.5
OUT_OF_RANGE_FACTOR = 1.5
OUT_OF_RANGE_MARGIN = 0.02
CLIPPED_LIMIT = 0.001
CLIPPED_FACTOR = 2.0
INVALID_DECODE_FACTOR = 2.0
INVALID_DECODE_LIMIT = 0.005
RMSE_RATIO = 2.0
MAX_TOKEN_LEN_QUANTILE = 99.9  # percent
MAX_TOKEN_LEN_MARGIN = 1.1
# A value on the edge of the range (a gripper at exactly q99) may land a few ulps beyond 1 after the affine map.
RANGE_TOLERANCE = 1e-6
BATCH_SIZE = 2048
_PROFILE_KEYS = (
    "num_chunks",
    "encoded_dims",
    "token_length",
    "out_of_range_fraction",
    "invalid_decode_fraction",
    "rmse",
)
_TOKEN_KEYS = ("mean", "p50", "p99", "p99.9", "max")


def unclipped_normalize(normalizer: Normalizer, raw: np.ndarray) -> np.ndarray:
    """Raw chunks `[..., D]` -> the normalizer's affine map WITHOUT its clip, float64 `[..., D]`."""
    offset, scale = normalizer.affine()
    return (np.asarray(raw, dtype=np.float64) - offset) / scale


def recommend_max_token_len(p999: float, floor: float = 0.0) -> int:
    """The max token length to configure: ceil(1.1 * max(`p999`, `floor`)), from the p99.9 of the token lengths
    and a floor (the fit-time maximum)."""
    return math.ceil(MAX_TOKEN_LEN_MARGIN * max(float(p999), float(floor)))


def profile(codec: ActionCodec, raw: np.ndarray, progress: bool = False) -> dict:
    """Encode and decode raw chunks through the saved pipeline and measure what drift changes.

    `raw`: chunks `[N, H, D]` over the encoded dims, after the delta transform, in action units (what
    `ChunkSet.train_raw` / `holdout_raw` hold). Returns a plain dict: token-length distribution, `max_token_len`,
    per-dim share of values outside [-1, 1] before clipping, clipped-coefficient share (None for tokenizers that
    do not clip), invalid-decode share, RMSE (normalized units, against the unclipped values) and raw RMSE
    (action units). `progress` shows a bar on stderr (when it is a terminal)."""
    return _measure(codec, raw, progress)[1]


def _measure(codec: ActionCodec, raw: np.ndarray, progress: bool) -> tuple[np.ndarray, dict]:
    """`profile`, plus the token length of every chunk `[N]`."""
    raw = np.asarray(raw)
    if raw.ndim != 3 or len(raw) == 0:
        raise ActokError(f"profile needs raw chunks [N, H, D] with N >= 1, got shape {raw.shape}")
    n, horizon, dim = raw.shape
    if (horizon, dim) != (codec.horizon, len(codec.encoded_dims)):
        raise ActokError(
            f"chunks of shape [H={horizon}, D={dim}] do not fit the pipeline's "
            f"[H={codec.horizon}, D={len(codec.encoded_dims)}]"
        )
    tokenizer, normalizer = codec.tokenizer, codec.normalizer
    count_clipped = getattr(tokenizer, "count_clipped", None)
    lengths = np.empty(n, dtype=np.int64)
    outside = np.zeros(dim)
    squared = raw_squared = 0.0
    invalid = clipped = n_valid_values = 0
    with tqdm(total=n, desc="check", unit="chunk", file=sys.stderr, disable=None if progress else True) as bar:
        for start in range(0, n, BATCH_SIZE):
            batch = raw[start : start + BATCH_SIZE]
            unclipped = unclipped_normalize(normalizer, batch)
            normalized = normalizer.normalize(batch)
            ids = tokenizer.encode(normalized)
            decoded, valid = tokenizer.decode(ids, horizon=horizon, action_dim=dim, return_valid=True)
            lengths[start : start + len(batch)] = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            outside += (np.abs(unclipped) > 1.0 + RANGE_TOLERANCE).sum(axis=(0, 1))
            # error of the sequences that decode: invalid ones are counted on their own (zeros would swamp it)
            squared += float(((decoded - unclipped)[valid] ** 2).sum())
            raw_squared += float(((normalizer.unnormalize(decoded) - batch)[valid] ** 2).sum())
            n_valid_values += int(valid.sum()) * horizon * dim
            invalid += int((~valid).sum())
            if count_clipped is not None:
                clipped += count_clipped(normalized)
            bar.update(len(batch))
    p50, p99, p999 = np.percentile(lengths, [50, 99, MAX_TOKEN_LEN_QUANTILE])
    return lengths, {
        "num_chunks": n,
        "encoded_dims": list(codec.encoded_dims),
        "normalization_mode": normalizer.mode.value,
        "token_length": {
            "mean": float(lengths.mean()),
            "p50": float(p50),
            "p99": float(p99),
            "p99.9": float(p999),
            "max": int(lengths.max()),
        },
        "max_token_len": recommend_max_token_len(p999),
        "out_of_range_fraction": (outside / (n * horizon)).tolist(),
        "clipped_coefficient_fraction": clipped / raw.size if count_clipped is not None else None,
        "invalid_decode_fraction": invalid / n,
        "rmse": math.sqrt(squared / max(n_valid_values, 1)),
        "raw_rmse": math.sqrt(raw_squared / max(n_valid_values, 1)),
    }


def profile_fit(codec: ActionCodec, chunks: ChunkSet) -> dict:
    """The fit-time profile `actok train` records: `{"splits": {"train": profile, "holdout": profile}}` (no
    "holdout" without held-out episodes), each with its episode indices; `fit_baseline` merges them."""
    splits = {
        "train": (chunks.train_raw, chunks.train_episodes),
        "holdout": (chunks.holdout_raw, chunks.holdout_episodes),
    }
    return {
        "splits": {
            name: {**profile(codec, raw), "episodes": episodes} for name, (raw, episodes) in splits.items() if len(raw)
        },
        "actok_version": __version__,
    }


def fit_baseline(fit_profile: dict) -> dict:
    """The reference `compare` judges against: every metric of the recorded splits at its largest (per dim for
    the out-of-range shares), i.e. serving data passes when it looks like some part of the fit-time data."""
    splits = list(fit_profile["splits"].values())

    def largest(values):
        present = [v for v in values if v is not None]
        return max(present) if present else None

    return {
        "splits": list(fit_profile["splits"]),
        "num_chunks": sum(s["num_chunks"] for s in splits),
        "encoded_dims": splits[0]["encoded_dims"],
        "normalization_mode": splits[0].get("normalization_mode"),
        "token_length": {k: largest(s["token_length"][k] for s in splits) for k in splits[0]["token_length"]},
        "max_token_len": largest(s.get("max_token_len") for s in splits),
        "out_of_range_fraction": np.max([s["out_of_range_fraction"] for s in splits], axis=0).tolist(),
        **{
            key: largest(s.get(key) for s in splits)
            for key in ("clipped_coefficient_fraction", "invalid_decode_fraction", "rmse", "raw_rmse")
        },
    }


def save_profile(folder: str | Path, fit_profile: dict) -> Path:
    """Write `fit_profile.json` into a saved tokenizer folder."""
    path = Path(folder) / PROFILE_FILE
    path.write_text(json.dumps(fit_profile, indent=2) + "\n")
    return path


def load_profile(folder: str | Path) -> dict | None:
    """The fit-time profile of a saved tokenizer folder, or None when it has none (older actok, a Hub folder)."""
    path = Path(folder) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ActokError(f"{path} is not valid JSON ({exc}); delete it or re-run actok train") from None
    splits = data.get("splits") if isinstance(data, dict) else None
    if not isinstance(splits, dict) or not splits:
        raise ActokError(f"{path} is not a fit profile: it has no 'splits'; delete it or re-run actok train")
    for name, split in splits.items():
        missing = [k for k in _PROFILE_KEYS if not isinstance(split, dict) or k not in split]
        if not missing:
            missing = [f"token_length.{k}" for k in _TOKEN_KEYS if k not in (split["token_length"] or {})]
        if missing:
            raise ActokError(
                f"{path} is not a fit profile: split {name!r} lacks {', '.join(missing)}; delete it or re-run actok train"
            )
    return data


def serving_chunks(
    codec: ActionCodec,
    reader: LeRobotDatasetReader,
    sample_fraction: float = 0.2,
    max_chunks: int | None = None,
    seed: int = 0,
    *,
    engine: str = "local",
    ray_address: str | None = None,
) -> ChunkSet:
    """Chunks of every episode of `reader` cut as the saved pipeline cuts them (its horizon, encoded dims, delta
    dims and state key; no hold-out), `max_chunks` of them at most (a `seed`ed uniform subset, chosen before any is
    read). Only the raw chunks (`train_raw`) are meant to be used: normalization is the saved normalizer's job, so
    none is fitted here. `engine`/`ray_address` as in `build_chunks`."""
    spec = codec.spec
    delta = ",".join(map(str, spec.delta_dims)) or None
    if delta and spec.state_key not in reader.columns:
        raise ActokError(
            f"the saved pipeline makes dims {delta} relative to the state column {spec.state_key!r}, which "
            f"{reader.repo_id} lacks; available columns: {', '.join(reader.columns)}"
        )
    reader.episode_table()  # a dataset that cannot be read says so before its width is compared
    action_dim = reader.column_width("action")[0]
    if action_dim != spec.action_dim:
        raise ActokError(
            f"{reader.repo_id} has {action_dim}-D actions but the tokenizer was trained on {spec.action_dim}-D "
            f"actions (encoded dims {dims_to_spec(spec.encoded_dims)})"
        )
    config = ChunkConfig(
        action_horizon=spec.horizon,
        encoded_dims=dims_to_spec(spec.encoded_dims),
        delta_dims=delta,
        state_key=spec.state_key,
        normalization_mode=NormalizationMode.IDENTITY.value,
        sample_fraction=sample_fraction,
        max_chunks=max_chunks,
        holdout_fraction=0.0,
        seed=seed,
    )
    return build_chunks(reader, config, engine=engine, ray_address=ray_address)


def _ratio(serving: float, fit: float) -> float:
    return serving / max(fit, 1e-12)  # a zero fit-time value (an exact tokenizer's RMSE) makes any error drift


def _check(name: str, serving: float, fit: float | None, limit: float | None, ratio: bool) -> dict:
    """One row of the comparison. `ratio` checks compare serving / fit with `limit` (and need a fit value);
    the others compare the serving value itself with `limit`. `drifted` is None when there is nothing to judge."""
    quotient = _ratio(serving, fit) if ratio and fit is not None else None
    value = quotient if ratio else serving
    return {
        "name": name,
        "fit": fit,
        "serving": serving,
        "ratio": quotient,
        "limit": limit,
        "limit_is_ratio": ratio,
        "drifted": None if value is None or limit is None else bool(value > limit),
    }


def compare(serving: dict, fit: dict | None) -> dict:
    """Judge a serving profile against the fit-time baseline (`fit_baseline`; None: the absolute checks only).

    Returns `verdict` ("ok" or "drift"), a one-line `message`, `checks` (one dict per check: name, fit, serving,
    ratio, limit, limit_is_ratio, drifted; the range check adds the worst `dim` and the drifted `dims`),
    `max_token_len` and the rule that chose it, and the thresholds."""
    if fit is not None and list(fit["encoded_dims"]) != list(serving["encoded_dims"]):
        raise ActokError(
            f"the fit profile covers dims {fit['encoded_dims']} but the pipeline encodes {serving['encoded_dims']}: "
            f"the folder's {PROFILE_FILE} does not belong to its pipeline.json"
        )
    fit = fit or {}
    tokens, fit_tokens = serving["token_length"], fit.get("token_length", {})
    checks = [
        _check("mean_token_length", tokens["mean"], fit_tokens.get("mean"), MEAN_TOKEN_RATIO, ratio=True),
        _check("p99_token_length", tokens["p99"], fit_tokens.get("p99"), P99_TOKEN_RATIO, ratio=True),
        _range_check(serving, fit),
    ]
    if serving.get("clipped_coefficient_fraction") is not None:
        fit_clipped = fit.get("clipped_coefficient_fraction")
        limit = max(CLIPPED_LIMIT, CLIPPED_FACTOR * (fit_clipped or 0.0))
        checks.append(
            _check("clipped_coefficient_fraction", serving["clipped_coefficient_fraction"], fit_clipped, limit, False)
        )
    checks += [
        _check(
            "invalid_decode_fraction",
            serving["invalid_decode_fraction"],
            fit.get("invalid_decode_fraction"),
            max(INVALID_DECODE_LIMIT, INVALID_DECODE_FACTOR * (fit.get("invalid_decode_fraction") or 0.0)),
            ratio=False,
        ),
        _check("rmse", serving["rmse"], fit.get("rmse"), RMSE_RATIO, ratio=True),
    ]
    fit_max = fit_tokens.get("max")
    rule = f"ceil({MAX_TOKEN_LEN_MARGIN:g} x max(serving p99.9 {tokens['p99.9']:.1f}" + (
        f", fit-time max {fit_max:g}))" if fit_max is not None else "))"
    )
    drifted = [c for c in checks if c["drifted"]]
    return {
        "verdict": "drift" if drifted else "ok",
        "message": _message(drifted, checks, bool(fit)),
        "comparison_available": bool(fit),
        "checks": checks,
        "max_token_len": recommend_max_token_len(tokens["p99.9"], fit_max or 0.0),
        "max_token_len_rule": rule,
        "fit_max_token_len": fit.get("max_token_len"),
        "thresholds": {
            "mean_token_length_ratio": MEAN_TOKEN_RATIO,
            "p99_token_length_ratio": P99_TOKEN_RATIO,
            "out_of_range_fraction": f"> {OUT_OF_RANGE_FACTOR:g} x fit + {OUT_OF_RANGE_MARGIN:g}, per dim",
            "clipped_coefficient_fraction": f"> max({CLIPPED_LIMIT:g}, {CLIPPED_FACTOR:g} x fit)",
            "invalid_decode_fraction": INVALID_DECODE_LIMIT,
            "rmse_ratio": RMSE_RATIO,
        },
    }


def _range_check(serving: dict, fit: dict) -> dict:
    """Per dim: the share of values outside [-1, 1] before clipping, against 1.5x fit + 2 points. The row shows
    the dim closest to (or furthest beyond) its limit; `dims` lists every drifted dim, worst first."""
    served, dims = np.asarray(serving["out_of_range_fraction"]), serving["encoded_dims"]
    if "out_of_range_fraction" not in fit:
        worst = int(np.argmax(served))
        return {
            **_check("out_of_range_fraction", float(served[worst]), None, None, False),
            "dim": dims[worst],
            "dims": [],
        }
    fitted = np.asarray(fit["out_of_range_fraction"])
    limits = OUT_OF_RANGE_FACTOR * fitted + OUT_OF_RANGE_MARGIN
    excess = served - limits
    worst = int(np.argmax(excess))
    flagged = [i for i in np.argsort(-excess, kind="stable") if excess[i] > 0]
    return {
        **_check("out_of_range_fraction", float(served[worst]), float(fitted[worst]), float(limits[worst]), False),
        "dim": dims[worst],
        "dims": [{"dim": dims[i], "serving": float(served[i]), "fit": float(fitted[i])} for i in flagged],
    }


def _describe(check: dict) -> str:
    """A drifted check in words, for the verdict line."""
    name = check["name"]
    if check["limit_is_ratio"]:
        return f"{name.replace('_', ' ')} {check['ratio']:.2f}x fit time (limit {check['limit']:g}x)"
    if name == "out_of_range_fraction":
        worst = ", ".join(f"dim {d['dim']} {d['serving']:.1%} vs {d['fit']:.1%} at fit time" for d in check["dims"][:3])
        more = ", ..." if len(check["dims"]) > 3 else ""
        return f"{len(check['dims'])} dim(s) with values outside [-1, 1] before clipping ({worst}{more})"
    what = name.removesuffix("_fraction").replace("_", " ")
    return f"{what}s {check['serving']:.2%} (limit {check['limit']:.2%})"


def _message(drifted: list[dict], checks: list[dict], compared: bool) -> str:
    if drifted:
        return "DRIFT: " + "; ".join(map(_describe, drifted))
    if not compared:
        return (
            f"OK: absolute checks passed; the tokenizer folder has no {PROFILE_FILE}, so the comparison with fit "
            "time is unavailable (actok train records it)"
        )
    ratios = {c["name"]: c["ratio"] for c in checks if c["limit_is_ratio"]}
    return (
        f"OK: within the thresholds (mean tokens {ratios['mean_token_length']:.2f}x, "
        f"p99 {ratios['p99_token_length']:.2f}x, rmse {ratios['rmse']:.2f}x fit time)"
    )


def check_dataset(
    path: str | Path,
    reader: LeRobotDatasetReader,
    sample_fraction: float = 0.2,
    max_chunks: int | None = None,
    seed: int = 0,
    progress: bool = False,
    *,
    engine: str = "local",
    ray_address: str | None = None,
) -> dict:
    """Run a dataset through the saved tokenizer folder `path` (tokenizer + pipeline.json) and compare with its
    fit-time profile. `sample_fraction` of the chunks of every episode are used (LeRobot's per-episode sampling),
    `max_chunks` keeps a `seed`ed random subset of those (`engine`/`ray_address` as in `build_chunks`). Returns `compare`'s dict plus the dataset, the `serving`
    profile (with the share of chunks longer than the fit-time `max_token_len`) and the `fit` baseline."""
    check_engine(engine, ray_address)
    path = Path(path)
    if not path.is_dir():
        raise ActokError(f"tokenizer folder {path} does not exist")
    if max_chunks is not None and max_chunks < 1:
        raise ActokError(f"max_chunks must be >= 1, got {max_chunks}")
    codec = ActionCodec.load(path)
    recorded = load_profile(path)
    fit = fit_baseline(recorded) if recorded is not None else None
    chunks = serving_chunks(codec, reader, sample_fraction, max_chunks, seed, engine=engine, ray_address=ray_address)
    raw = chunks.train_raw
    lengths, serving = _measure(codec, raw, progress)
    if fit is not None and fit.get("max_token_len") is not None:
        serving["over_fit_max_token_len_fraction"] = float((lengths > fit["max_token_len"]).mean())
    return {
        **compare(serving, fit),
        "tokenizer_path": str(path),
        "tokenizer": codec.tokenizer.name,
        "repo_id": reader.repo_id,
        "root": str(reader.root),
        "episodes": len(chunks.train_episodes),
        "skipped_episodes": chunks.skipped_episodes,
        "sample_fraction": sample_fraction,
        "serving": serving,
        "fit": fit,
    }


def format_report(report: dict) -> str:
    """The human view of `check_dataset`'s dict: a fit-time vs serving table, the recommended max token length
    and the verdict line (last)."""
    fit = report["fit"]
    source = (
        f"{PROFILE_FILE} ({' + '.join(fit['splits'])} chunks of the fit-time data, {fit['num_chunks']} in all; "
        "each metric at its largest)"
        if fit is not None
        else f"no {PROFILE_FILE}: comparison unavailable"
    )
    lines = [
        f"Checked {report['serving']['num_chunks']} chunks of {report['repo_id']} ({report['episodes']} episodes, "
        f"sample fraction {report['sample_fraction']:g}) with the {report['tokenizer']} tokenizer in "
        f"{report['tokenizer_path']}, against {source}"
    ]
    rows = [("check", "fit time", "serving", "ratio", "limit", "status")]
    for c in report["checks"]:
        fmt = "{:.2%}".format if c["name"].endswith("_fraction") else "{:.4g}".format
        name = c["name"].replace("_", " ")
        if c["name"] == "out_of_range_fraction":
            name = f"outside [-1, 1] before clip (dim {c['dim']})"
        limit = "-" if c["limit"] is None else f"{c['limit']:g}x" if c["limit_is_ratio"] else fmt(c["limit"])
        rows.append(
            (
                name,
                "-" if c["fit"] is None else fmt(c["fit"]),
                fmt(c["serving"]),
                "-" if c["ratio"] is None else f"{c['ratio']:.2f}x",
                limit,
                {None: "-", True: "DRIFT", False: "ok"}[c["drifted"]],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += [
        "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))) for r in rows
    ]
    tokens = report["serving"]["token_length"]
    lines.append(f"serving token length: p50 {tokens['p50']:g}, p99.9 {tokens['p99.9']:.1f}, max {tokens['max']}")
    if "over_fit_max_token_len_fraction" in report["serving"]:
        lines.append(
            f"chunks longer than the fit-time max token length {report['fit_max_token_len']}: "
            f"{report['serving']['over_fit_max_token_len_fraction']:.2%}"
        )
    lines.append(f"max_token_len to configure: {report['max_token_len']} = {report['max_token_len_rule']}")
    lines.append(report["message"])
    return "\n".join(lines)
