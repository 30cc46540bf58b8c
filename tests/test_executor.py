"""The shared executor: local and Ray engines give the same outcomes; errors are outcomes, not crashes."""

from __future__ import annotations

import pytest

from actok.data.chunks import parse_dims_spec
from actok.errors import ActokError
from actok.executor import check_engine, run_grid


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ActokError("three is not allowed")
    return x * x


def _outcomes(engine: str) -> dict[int, object]:
    # Ray workers import the task's function: use one of actok's (this test module is not importable there).
    return dict(run_grid(parse_dims_spec, ["0:6,7:14", "3", "1:2", "0:4"], engine=engine))


def test_local_keeps_order_and_captures_errors():
    pairs = list(run_grid(_square_or_fail, [0, 1, 2, 3, 4]))
    assert [i for i, _ in pairs] == [0, 1, 2, 3, 4]
    assert [r for _, r in pairs if not isinstance(r, Exception)] == [0, 1, 4, 16]
    assert isinstance(pairs[3][1], ActokError) and "three" in str(pairs[3][1])


@pytest.mark.parametrize(
    ("engine", "address", "needle"),
    [
        ("spark", None, "unknown engine 'spark'"),
        ("local", "auto", "only applies"),
        ("ray", "not an address", "invalid Ray"),
    ],
)
def test_bad_engine_arguments_are_one_line(engine, address, needle):
    with pytest.raises(ActokError, match=needle):
        check_engine(engine, address)


@pytest.mark.slow
def test_ray_gives_the_local_outcomes():
    pytest.importorskip("ray", reason="the dev extra installs ray")
    local, remote = _outcomes("local"), _outcomes("ray")
    assert sorted(remote) == sorted(local) == [0, 1, 2, 3]
    assert local[0] == [(0, 6), (7, 14)] and isinstance(local[1], ActokError)
    for i, value in local.items():
        if isinstance(value, Exception):
            assert isinstance(remote[i], ActokError) and str(remote[i]) == str(value)
        else:
            assert remote[i] == value


@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9"])
def test_an_unreachable_ray_address_is_one_line_and_fast(address):
    pytest.importorskip("ray")
    from actok.executor import ray_session

    match = f"could not connect to Ray at {address}: nothing answers at 127.0.0.1:9"
    with pytest.raises(ActokError, match=match), ray_session(address):
        pass


def test_an_initialized_ray_is_reused_and_a_different_address_is_said(monkeypatch):
    """A user's own Ray session is used as it is; an address given as well would be ignored, so a warning says so."""
    import types
    import warnings

    import actok.executor as executor
    from actok.errors import ActokWarning

    fake = types.SimpleNamespace(is_initialized=lambda: True)
    monkeypatch.setattr(executor, "import_ray", lambda: fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with executor.ray_session() as ray:
            assert ray is fake
    match = "already initialized in this process: the run uses that session, not the address 10.0.0.1:6379"
    with pytest.warns(ActokWarning, match=match), executor.ray_session("10.0.0.1:6379") as ray:
        assert ray is fake
