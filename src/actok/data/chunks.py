"""Episodes -> action chunks, with the exact semantics of `lerobot-train-tokenizer`, vectorized per episode."""

from __future__ import annotations

import numpy as np

from actok.errors import ActokError


def parse_dims_spec(spec: str) -> list[tuple[int, int]]:
    """`"0:6,7:14"` -> `[(0, 6), (7, 14)]`, checking the syntax and `0 <= start < end` (not the action dim)."""
    if not str(spec).strip():
        raise ActokError(
            f"encoded_dims {spec!r} is empty: pass comma-separated start:end ranges such as '0:6,7:14', "
            "or leave it unset to encode every action dim"
        )
    ranges = []
    for part in str(spec).split(","):
        bounds = part.strip().split(":")
        try:
            start, end = (int(b) for b in bounds) if len(bounds) == 2 else (None, None)
        except ValueError:
            start = end = None
        if start is None or end is None:
            raise ActokError(
                f"malformed encoded_dims {spec!r}: expected comma-separated start:end ranges of integers "
                f"such as '0:6,7:14' (0 <= start < end <= the action dim)"
            )
        if not 0 <= start < end:
            raise ActokError(
                f"encoded_dims range '{part.strip()}' is empty, reversed or negative: "
                "need 0 <= start < end <= the action dim"
            )
        ranges.append((start, end))
    return ranges


def parse_encoded_dims(spec: str, action_dim: int, *, clip: bool = False) -> list[int]:
    """`"0:6,7:14"` -> `[0, ..., 5, 7, ..., 13]` (python slices, end exclusive, concatenated in order).

    With `clip=True` ranges are cut to the action dim and those past it dropped (used only for the default
    value, so an explicit out-of-range request is always an error).
    """
    dims: list[int] = []
    for start, end in parse_dims_spec(spec):
        if clip:
            end = min(end, action_dim)
        elif end > action_dim:
            raise ActokError(
                f"encoded_dims range '{start}:{end}' is out of range for action dim {action_dim} "
                f"(need 0 <= start < end <= {action_dim})"
            )
        dims.extend(range(start, end))
    if not dims:
        raise ActokError(f"encoded_dims {spec!r} selects no dimension of the {action_dim}-D action")
    return dims


def dims_to_spec(dims: list[int]) -> str:
    """Inverse of `parse_encoded_dims`: `[0, 1, 2, 5]` -> `"0:3,5:6"`."""
    parts, start = [], dims[0]
    for prev, cur in zip(dims, [*dims[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(f"{start}:{prev + 1}")
            start = cur
    return ",".join(parts)


def parse_delta_dims(spec: str | None, action_dim: int | None) -> list[int]:
    """`"0,1,2"` -> `[0, 1, 2]`; indices are into the full action vector (`action_dim=None`: syntax only)."""
    if spec is None or not str(spec).strip():
        return []
    try:
        dims = [int(d) for d in str(spec).split(",") if d.strip()]
    except ValueError:
        raise ActokError(f"malformed delta_dims {spec!r}: expected comma-separated integers such as '0,1,2'") from None
    bad = [d for d in dims if d < 0 or (action_dim is not None and d >= action_dim)]
    if bad:
        valid = f"0..{action_dim - 1}" if action_dim is not None else ">= 0"
        where = f" for action dim {action_dim}" if action_dim is not None else ""
        raise ActokError(f"delta_dims {bad} out of range{where} (valid: {valid})")
    return dims


def sample_chunk_starts(n_chunks: int, sample_fraction: float, position: int) -> np.ndarray:
    """Start frames of the chunks kept for one episode, in LeRobot's order.

    Keeps `max(1, int(n_chunks * sample_fraction))` starts drawn without replacement with
    `np.random.RandomState(hash(position) % 2**31)`, where `position` is the episode's position in the dataset's
    episode order (LeRobot's loop variable; it equals the episode index only when indices run 0..N-1);
    all starts in order when `sample_fraction >= 1`.
    """
    if sample_fraction >= 1.0:
        return np.arange(n_chunks)
    n_samples = max(1, int(n_chunks * sample_fraction))
    rng = np.random.RandomState(hash(int(position)) % (2**31))
    return rng.choice(n_chunks, size=n_samples, replace=False)


def episode_chunks(
    action: np.ndarray,
    state: np.ndarray | None,
    horizon: int,
    starts: np.ndarray,
    delta_dims: list[int] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Chunks `[n, H, A]` of one episode starting at `starts`; delta dims made relative to the state at
    each chunk's first frame (`chunk[t, d] = action[i + t, d] - state[i, d]`), in the action's dtype.
    Written into `out` when given (shape `[n, H, A]`)."""
    windows = np.take(action, starts[:, None] + np.arange(horizon), axis=0, out=out)
    if delta_dims:
        # One contiguous full-width subtraction (x - 0 is exact) instead of a fancy-indexed read-modify-write.
        offset = np.zeros((len(starts), action.shape[1]), dtype=action.dtype)
        offset[:, delta_dims] = state[starts][:, delta_dims]
        windows -= offset[:, None, :]
    return windows


def collect_chunks(
    episodes: list[tuple[int, np.ndarray, np.ndarray | None]],
    horizon: int,
    sample_fraction: float,
    delta_dims: list[int] | None = None,
) -> np.ndarray:
    """Sampled chunks of many `(position, action [T, A], state [T, A] | None)` episodes, concatenated in order
    into one `[N, H, A]` array that each episode writes into directly (no second copy). `position` seeds the
    episode's sampling (see `sample_chunk_starts`)."""
    starts = [sample_chunk_starts(len(a) - horizon + 1, sample_fraction, i) for i, a, _ in episodes]
    dim = episodes[0][1].shape[1] if episodes else 0
    dtype = episodes[0][1].dtype if episodes else np.float32
    out = np.empty((sum(len(s) for s in starts), horizon, dim), dtype=dtype)
    k = 0
    for (_, action, state), s in zip(episodes, starts, strict=True):
        episode_chunks(action, state, horizon, s, delta_dims, out=out[k : k + len(s)])
        k += len(s)
    return out
