"""The contract every registered tokenizer must meet: `actok.testing`'s checks, one pytest item per (registered
tokenizer x check). A new tokenizer is tested here without editing this file: it declares its conformance
parameters and error bound on its class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from annotated_types import Interval

from actok import available_tokenizers, create_tokenizer
from actok.errors import ActokError
from actok.testing import CHECKS, ConformanceCase, check_tokenizer, iter_checks, run_check
from actok.tokenizers import get_tokenizer_class, tokenizer_extra
from actok.tokenizers.base import ActionTokenizer, TokenBatch, as_chunks, flatten_rows, state_array


@pytest.fixture(scope="module")
def cases():
    """name -> ConformanceCase, created on first use: each registered tokenizer is fitted once for all checks."""
    made: dict[str, ConformanceCase] = {}

    def case(name: str) -> ConformanceCase:
        if name not in made:
            made[name] = ConformanceCase(get_tokenizer_class(name))
        return made[name]

    return case


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", available_tokenizers())
def test_contract(name, check, cases):
    if tokenizer_extra(name):
        pytest.importorskip("torch")
    run_check(cases(name), check)


def test_parameters_are_converted_and_checked_in_one_place():
    tok = create_tokenizer("binning", n_bins=np.int64(64))
    assert type(tok.n_bins) is int and tok.get_params() == {"n_bins": 64}
    with pytest.raises(ActokError, match=r"binning parameter n_bins must be an integer in \[2, 32768\], got 2\.5"):
        get_tokenizer_class("binning")(2.5)  # direct construction, positional: the same check
    with pytest.raises(
        ActokError, match=r"fast parameter vocab_size must be an integer in \[2, 32768\], got 1000000000"
    ):
        create_tokenizer("fast", vocab_size=10**9)  # the BPE trainer would abort the process
    with pytest.raises(ActokError, match=r"fast parameter scale must be a finite number in \(0, 1000000\], got nan"):
        create_tokenizer("fast", scale=float("nan"))
    assert create_tokenizer("klt", transform="dct").transform == "dct"


# ------------------------------------------------------------------ check_tokenizer on tokenizers of one's own
class Toy(ActionTokenizer):
    """Each value's offset from its dimension's training mean, in steps of 4 / levels: H·D ids per chunk."""

    name = "toy"
    conformance_rmse_bound = 0.005

    def __init__(self, levels: Annotated[int, Interval(ge=2, le=4096)] = 512):
        super().__init__()
        self.levels = levels
        self.mean: np.ndarray | None = None  # [D]

    @property
    def vocab_size(self) -> int:
        return self.levels

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> Toy:
        chunks = as_chunks(chunks)
        self._set_shape(chunks)
        self.mean = chunks.mean(axis=(0, 1))
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        chunks = self._check_shape(chunks)
        steps = np.rint((chunks - self.mean) * self.levels / 4) + self.levels // 2
        return flatten_rows(np.clip(steps, 0, self.levels - 1).astype(np.int64)).tolist()

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        n = horizon * action_dim
        body = batch.fixed(n)
        valid = (batch.lengths == n) & ((body >= 0) & (body < self.levels)).all(axis=1)
        steps = np.where(body >= 0, np.clip(body, 0, self.levels - 1), self.levels // 2) - self.levels // 2
        return (steps * 4 / self.levels).reshape(len(body), horizon, action_dim) + self.mean, valid

    def _check_fitted_state(self) -> None:
        if self.mean is None:
            raise ActokError("toy tokenizer is not fitted: call fit(chunks) first")

    def _check_decode_shape(self, horizon: int, action_dim: int) -> None:
        if action_dim != len(self.mean):
            raise ActokError(f"toy was fitted on {len(self.mean)} dims, asked to decode {action_dim}")

    def _save_state(self, directory: Path) -> dict[str, Any]:
        return {"mean": self.mean.tolist()}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        self.mean = state_array(directory, state, "mean", (self.action_dim,))


class DecodeRaisesOnMalformedIds(Toy):
    def _decode(self, batch, horizon, action_dim, relaxed):
        ids = np.array(batch.rows(), dtype=np.int64).reshape(len(batch), horizon, action_dim)  # assumes valid rows
        return (ids - self.levels // 2) * 4 / self.levels + self.mean, np.ones(len(batch), dtype=bool)


class SaveLosesState(Toy):
    def _save_state(self, directory):
        return {}

    def _load_state(self, directory, state):
        self.mean = np.zeros(self.action_dim)


class EncodeWritesToItsInput(Toy):
    def encode(self, chunks):
        chunks = self._check_shape(chunks)
        chunks -= self.mean  # in place: as_chunks returns the caller's float64 array itself
        return (
            flatten_rows(np.clip(np.rint(chunks * self.levels / 4) + self.levels // 2, 0, self.levels - 1))
            .astype(np.int64)
            .tolist()
        )


class UnboundedParameter(Toy):
    def __init__(self, levels: Annotated[int, Interval(ge=2, le=4096)] = 512, smoothing: float = 0.0):
        super().__init__(levels)
        self.smoothing = smoothing


def test_check_tokenizer_passes_a_correct_tokenizer_of_ones_own():
    check_tokenizer(Toy)
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(size=(300, 8, 3)) * 0.05, axis=1).clip(-1, 1)  # synthetic chunks [N, 8, 3]
    tok = Toy(levels=256)
    tok.conformance_rmse_bound = 0.01  # an instance's own bound for its own parameters
    check_tokenizer(tok, chunks=walks)
    assert tok.mean is None  # the instance given is not fitted: the checks fit copies
    check_tokenizer(Toy, chunks=(walks[:250], walks[250:]))


@pytest.mark.parametrize(
    ("broken", "check", "reason"),
    [
        (
            DecodeRaisesOnMalformedIds,
            "malformed_ids_do_not_raise",
            "decode of [empty, [-1], beyond the vocabulary, cut, extended, huge id] (on_invalid='zeros') raised ValueError",
        ),
        (SaveLosesState, "save_load_gives_identical_ids", "after save and SaveLosesState.load: ids differ"),
        (EncodeWritesToItsInput, "input_not_mutated", "encode changed the chunks it was given"),
        (UnboundedParameter, "parameter_declarations", "parameter smoothing is a number without a declared range"),
    ],
)
def test_check_tokenizer_names_the_first_failing_check_and_why(broken, check, reason):
    with pytest.raises(AssertionError, match=re.escape(f"tokenizer 'toy' fails the {check} check: {reason}")):
        check_tokenizer(broken)
    failing = []
    for name, run in iter_checks(broken):
        try:
            run()
        except AssertionError:
            failing.append(name)
    assert check in failing


def test_check_tokenizer_refuses_what_it_cannot_check():
    with pytest.raises(ActokError, match="takes an ActionTokenizer subclass or instance, got str"):
        check_tokenizer("binning")
    with pytest.raises(ActokError, match=r"expected action chunks of shape \[N, H, D\], got shape \(10, 2\)"):
        check_tokenizer(Toy, chunks=np.zeros((10, 2)))
    with pytest.raises(ActokError, match="need at least 10 training and 2 held-out chunks, got 3 and 2"):
        check_tokenizer(Toy, chunks=np.zeros((5, 4, 2)))
    with pytest.raises(ActokError, match="train and held-out chunks differ in shape"):
        check_tokenizer(Toy, chunks=(np.zeros((20, 4, 2)), np.zeros((5, 4, 3))))
    assert Toy.conformance_rmse_bound == 0.005 and ActionTokenizer.conformance_rmse_bound is None


def test_a_tokenizer_without_a_declared_bound_is_told_to_declare_one():
    class NoBound(Toy):
        conformance_rmse_bound = None

    with pytest.raises(AssertionError, match="NoBound declares no conformance_rmse_bound"):
        run_check(ConformanceCase(NoBound), "round_trip_error_bound")


def test_the_guide_to_adding_a_tokenizer_runs_as_written():
    """docs/adding_a_tokenizer.md: its Python blocks, run in order, define a tokenizer that passes every check."""
    guide = (Path(__file__).resolve().parents[1] / "docs" / "adding_a_tokenizer.md").read_text()
    assert [name for name in CHECKS if f"| `{name}` |" not in guide] == []  # its table lists every check
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "guide"}
    exec(compile("\n".join(blocks), "adding_a_tokenizer.md", "exec"), namespace)  # the guide calls check_tokenizer
    assert namespace["RangeBinningTokenizer"].name == "range-binning"
