"""`build_chunks(engine="ray")`: Ray Data reads only the needed columns (`ray.data.read_parquet`; `read_lerobot`
decodes video and cannot select columns), every episode is chunked in a parallel task, and the frame statistics
of each episode are merged on the driver (a reduction). The plan (episode split, sampling, `max_chunks`) is made
on the driver first, from the index columns, so the chunks and exact statistics equal the local engine's."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pyarrow as pa

from actok.data.layout import ChunkArrays, ChunkPlan, EpisodePlan, Layout, episode_part
from actok.data.lerobot import Episode, LeRobotDatasetReader, list_column_to_numpy
from actok.data.stats import FrameStats
from actok.errors import ActokError
from actok.executor import ray_session, unwrap_error

_EMPTY = pa.table({"index": pa.array([], pa.int64()), "part": pa.array([], pa.binary())})


def chunk_episode_group(
    group: pa.Table, layout: Layout, plans: dict[int, EpisodePlan | None], order_col: str, stats_spec: tuple | None
) -> pa.Table:
    """One episode's rows (any order) -> one row: its index and the pickled (chunks `[n, H, D]` or None, its
    `FrameStats` or None). Runs on a Ray worker; `stats_spec` is `(names, exact)` of the statistics to take."""
    index = int(group.column("episode_index")[0].as_py())
    if index not in plans:  # beyond max_episodes, in a file that holds planned episodes
        return _EMPTY
    key = group.column(order_col).to_numpy()
    order = np.argsort(key, kind="stable")
    group = group.take(pa.array(order))
    where = f"the data files of episode {index}"
    state = list_column_to_numpy(group.column(layout.state_key), layout.state_key, where) if layout.state_key else None
    episode = Episode(
        index=index,
        action=list_column_to_numpy(group.column("action"), "action", where),
        state=state,
        frame_index=key[order] if order_col == "frame_index" else np.arange(len(key)),
    )
    plan = plans[index]
    stats = FrameStats(len(layout.stats_cols), *stats_spec) if stats_spec and plan and plan.split == 0 else None
    chunks = episode_part(episode, layout, plan, stats)
    return pa.table({"index": [index], "part": [pickle.dumps((chunks, stats))]})


def read_on_ray(
    reader: LeRobotDatasetReader, layout: Layout, plan: ChunkPlan, out: ChunkArrays, ray_address: str | None
) -> None:
    """Fill `out` with the chunks and statistics of `plan`'s episodes, read and cut by Ray."""
    order_col = reader.frame_key()
    if order_col is None or "episode_index" not in reader.columns:
        raise ActokError(
            f"--engine ray needs the columns episode_index and frame_index (or index) in every data file of "
            f"{reader.repo_id}; use --engine local"
        )
    wanted = ["action", *([layout.state_key] if layout.state_key else []), "episode_index", order_col]
    columns = list(dict.fromkeys(wanted))  # --state-key action reads the column once
    stats_spec = (out.stats.names, out.stats.exact) if out.stats is not None else None
    with ray_session(ray_address) as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-run execution plans on the terminal
        # The data folder, not the file list: Ray resolves listed paths in threads that race on importing fsspec's
        # HTTP filesystem when aiohttp is missing. Episodes beyond max_episodes are dropped by the tasks.
        # select_columns is pushed down into the parquet reader: only these columns are read.
        dataset = ray.data.read_parquet(str(reader.root / "data")).select_columns(columns)
        # One shuffle partition per data file (~100 MB each in LeRobot v3.0), not Ray's default 200.
        grouped = dataset.groupby("episode_index", num_partitions=min(len(reader.data_files), 200))
        parts = grouped.map_groups(
            chunk_episode_group,
            batch_format="pyarrow",
            fn_kwargs={"layout": layout, "plans": plan.episodes, "order_col": order_col, "stats_spec": stats_spec},
        )
        try:
            for batch in parts.iter_batches(batch_format="pyarrow", batch_size=None):
                for index, blob in zip(
                    batch.column("index").to_pylist(), batch.column("part").to_pylist(), strict=True
                ):
                    out.put(index, *pickle.loads(blob))
        except Exception as err:
            cause = unwrap_error(err)
            if isinstance(cause, ActokError):
                raise ActokError(str(cause)) from None
            raise
