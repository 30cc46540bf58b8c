"""Run a grid of independent tasks here or on a Ray cluster: the one executor bench, train and policy share.

A task is a picklable function applied to one picklable item (a bench cell, a policy training run, a chunk of
episodes). `run_grid` yields `(index, outcome)` pairs as tasks finish; an outcome is the function's return value
or the exception it raised, so a caller can skip a failed cell and go on (bench's skip-on-error).

- `engine="local"`: the tasks run one after another in this process (progress bars and Ctrl-C work as usual).
- `engine="ray"`: each task is a Ray task; `ray_address=None` starts a local Ray instance for this run (and stops
  it afterwards), `"auto"` or `"ray://host:port"` or `"host:port"` joins an existing cluster. `resources(item)`
  may ask for CPUs or GPUs per task (a learned tokenizer's cell asks for a GPU when its device wants one).

Ray is optional (`pip install 'actok[ray]'`); only `engine="ray"` imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from actok.errors import ActokError, ActokWarning

ENGINES = ("local", "ray")
T = TypeVar("T")
R = TypeVar("R")

_RAY_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+(:\d+)?|[A-Za-z0-9.\-\[\]:]+:\d+)$")


def check_engine(engine: str, ray_address: str | None = None) -> None:
    """One-line errors for an unknown engine, a Ray address without `--engine ray`, or a malformed address."""
    if engine not in ENGINES:
        raise ActokError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if ray_address is not None and engine != "ray":
        raise ActokError("--ray-address only applies with --engine ray")
    if ray_address is not None and not _RAY_ADDRESS.match(ray_address):
        raise ActokError(
            f"invalid Ray address {ray_address!r}; use 'auto', 'ray://HOST:PORT' or 'HOST:PORT' "
            "(or leave it out to start a local Ray instance)"
        )


def import_ray() -> Any:
    """The `ray` module, or a one-line error saying which extra installs it."""
    try:
        import ray
    except ImportError:
        raise ActokError("--engine ray needs Ray: pip install 'actok[ray]' -c constraints.txt") from None
    return ray


@contextlib.contextmanager
def ray_session(ray_address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of a run; yields the `ray` module.

    With no address a local instance is started (all this machine's CPUs unless `num_cpus`) and shut down on exit;
    joining a cluster leaves the cluster running. An already initialized Ray (a user's own session) is reused.
    """
    ray = import_ray()
    if ray.is_initialized():
        if ray_address not in (None, "local"):
            warnings.warn(
                f"Ray is already initialized in this process: the run uses that session, not the address {ray_address}",
                ActokWarning,
                stacklevel=3,
            )
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if ray_address in (None, "local"):
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    else:
        kwargs["address"] = ray_address
        _check_reachable(ray_address)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ActokError(f"could not connect to Ray at {ray_address or 'a new local instance'}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(ray_address: str, timeout_s: float = 5.0) -> None:
    """A one-line error when nothing listens at a `HOST:PORT` or `ray://HOST[:PORT]` address (`ray.init` would
    otherwise retry for minutes); `auto` is left to Ray, which fails fast when no cluster is running."""
    if ray_address == "auto":
        return
    rest = ray_address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        host, port = rest, "10001"  # ray://HOST: the Ray client's default port
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ActokError(
            f"could not connect to Ray at {ray_address}: nothing answers at {host}:{port} ({err.strerror or err})"
        ) from None


def unwrap_error(err: BaseException) -> BaseException:
    """The user's exception inside a Ray task error: Ray wraps what a task raised (`.cause`), and Ray Data wraps
    that again (`__cause__`); the innermost one is the user's."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = getattr(err, "cause", None)
        inner = inner if isinstance(inner, BaseException) else err.__cause__
        if inner is None:
            break
        err = inner
    return err


def run_grid(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    engine: str = "local",
    ray_address: str | None = None,
    resources: Callable[[T], dict[str, float]] | None = None,
) -> Iterator[tuple[int, R | Exception]]:
    """Apply `fn` to every item; yield `(index, result or the exception it raised)` as each finishes.

    Local runs keep the order of `items`; Ray yields in completion order. KeyboardInterrupt and SystemExit are
    never captured. `resources(item)` returns Ray resource requests (e.g. `{"num_cpus": 1, "num_gpus": 1}`);
    the default asks for one CPU per task. Under Ray, `fn` and every item must be picklable.
    """
    check_engine(engine, ray_address)
    if engine == "local":
        for i, item in enumerate(items):
            try:
                yield i, fn(item)
            except Exception as err:  # the caller decides: skip the cell or re-raise
                yield i, err
        return
    yield from _run_on_ray(fn, items, ray_address, resources)


def _run_on_ray(fn, items, ray_address, resources) -> Iterator[tuple[int, Any]]:
    with ray_session(ray_address) as ray:
        remote = ray.remote(fn)
        pending = {}
        for i, item in enumerate(items):
            options = {"num_cpus": 1, "max_retries": 0, **(resources(item) if resources else {})}
            pending[remote.options(**options).remote(item)] = i
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                i = pending.pop(ref)
                try:
                    yield i, ray.get(ref)
                except Exception as err:
                    yield i, unwrap_error(err)
        finally:
            for ref in pending:  # Ctrl-C or an early stop: do not leave tasks running on a shared cluster
                ray.cancel(ref, force=True)
