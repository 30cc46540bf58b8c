"""Score a trained policy: open loop on held-out episodes (any dataset), closed loop in the PushT simulator.

Confidence intervals are 95%: a normal interval for mean coverage, Wilson's for the success rate.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from actok.errors import ActokError
from actok.policy.data import PolicyData
from actok.policy.policies import Policy, token_accuracy

Z95 = 1.959964
SUCCESS_COVERAGE = 0.95  # gym-pusht's own success threshold
LATENCY_CHUNKS = 16  # chunks decoded one at a time for the per-chunk inference time
ENVIRONMENTS = {
    "pusht": {"gym_id": "gym_pusht/PushT-v0", "state_dim": 5, "angle_dims": [4], "agent_dims": [0, 1]},
}


def _half_width(values: np.ndarray) -> float:
    return float(Z95 * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def mean_ci95(values: np.ndarray) -> list[float]:
    """[low, high] normal 95% interval of the mean of `values` `[N]` (coverages: clipped to [0, 1])."""
    values = np.asarray(values, dtype=np.float64)
    half = _half_width(values)
    return [float(max(0.0, values.mean() - half)), float(min(1.0, values.mean() + half))]


def paired_difference_ci95(a: np.ndarray, b: np.ndarray) -> tuple[float, list[float]]:
    """Mean of `a - b` over the same episodes `[N]` (same seeds) and its normal 95% interval: the two policies
    differ significantly when the interval excludes 0."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    half = _half_width(diff)
    return float(diff.mean()), [float(diff.mean() - half), float(diff.mean() + half)]


def wilson_ci95(successes: int, n: int) -> list[float]:
    """[low, high] Wilson 95% interval of a success rate."""
    p, z2 = successes / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def open_loop(policy: Policy, data: PolicyData, idx: np.ndarray) -> dict[str, Any]:
    """Predict the chunks of held-out examples `idx`; errors in raw action units."""
    true = data.chunks[idx]
    start = time.perf_counter()
    predicted, valid, n_tokens = policy.predict(data.conditions[idx], data.previous_action[idx])
    batch_ms = 1000 * (time.perf_counter() - start) / len(idx)
    one = idx[:LATENCY_CHUNKS]
    start = time.perf_counter()
    for i in one:  # one chunk at a time: what a robot waits for, every autoregressive step included
        policy.predict(data.conditions[i : i + 1], data.previous_action[i : i + 1])
    error = np.abs(predicted - true)
    out = {
        "chunks": len(idx),
        "episodes": len(np.unique(data.episode[idx])),
        "rmse": float(np.sqrt((error**2).mean())),
        "p95_abs_error": float(np.quantile(error, 0.95)),
        "max_abs_error": float(error.max()),
        "first_step_rmse": float(np.sqrt((error[:, 0] ** 2).mean())),
        "invalid_decode_fraction": float(1.0 - valid.mean()),
        "token_accuracy": token_accuracy(policy, data, idx),
        "mean_generated_tokens": float(n_tokens.mean()),
        "inference_ms_per_chunk": 1000 * (time.perf_counter() - start) / len(one),
        "batched_inference_ms_per_chunk": batch_ms,
    }
    if policy.tokenizer is not None:
        ids = policy.tokenizer.encode(policy.normalizer.normalize(true))
        decoded = policy.normalizer.unnormalize(
            policy.tokenizer.decode(ids, horizon=data.horizon, action_dim=data.action_dim)
        )
        out["reconstruction_rmse"] = float(np.sqrt(((decoded - true) ** 2).mean()))
        out["mean_tokens"] = float(np.mean([len(x) for x in ids]))
    return out


def make_env(name: str):
    """A gym-pusht environment (state observations), or a one-line error naming the extra to install."""
    try:
        import gym_pusht  # noqa: F401  (registers the environment)
        import gymnasium as gym
    except ImportError:
        raise ActokError("--env pusht needs the simulator: pip install 'actok[sim]' -c constraints.txt") from None
    return gym.make(ENVIRONMENTS[name]["gym_id"], obs_type="state")


def closed_loop(
    policy: Policy,
    data: PolicyData,
    env_name: str,
    seeds: list[int],
    n_action_steps: int,
    max_steps: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Run one episode per seed (seeded reset), all episodes stepped together so the policy predicts a batch.

    Each re-plan predicts a chunk from the last `n_obs` observations and executes its first `n_action_steps`
    actions; an episode ends at success (coverage > 0.95) or after `max_steps` steps."""
    envs = [make_env(env_name) for _ in seeds]
    agent = ENVIRONMENTS[env_name]["agent_dims"]
    n_obs = data.conditions.shape[1]
    first = np.array([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    history = np.repeat(first[:, None, :], n_obs, axis=1)  # [E, n_obs, S]
    best = np.zeros(len(envs))
    final = np.zeros(len(envs))
    steps = np.zeros(len(envs), int)
    invalid = np.zeros(len(envs), int)
    done = np.zeros(len(envs), bool)
    policy_time = 0.0
    bar = tqdm(total=max_steps, desc=f"rollout {policy.spec.label}", disable=not progress, leave=False)
    while not done.all():
        active = np.flatnonzero(~done)
        start = time.perf_counter()
        chunk, valid, _ = policy.predict(data.encoder(history[active]), history[active, -1][:, agent])
        policy_time += time.perf_counter() - start
        invalid[active] += ~valid
        for k, e in enumerate(active):
            for action in chunk[k, :n_action_steps]:
                obs, _, terminated, _, info = envs[e].step(action)
                steps[e] += 1
                history[e] = np.concatenate([history[e, 1:], obs[None]])
                final[e] = info["coverage"]
                best[e] = max(best[e], final[e])
                if terminated or steps[e] >= max_steps:
                    done[e] = True
                    break
        bar.update(int(steps.max()) - bar.n)
        bar.set_postfix(coverage=f"{best.mean():.2f}", done=int(done.sum()))
    bar.close()
    for env in envs:
        env.close()
    return _closed_loop_record(best, final, invalid, steps, policy_time, seeds)


def _closed_loop_record(best, final, invalid, steps, policy_time, seeds) -> dict[str, Any]:
    successes = int((best > SUCCESS_COVERAGE).sum())
    return {
        "episodes": len(seeds),
        "seeds": [int(seeds[0]), int(seeds[-1])],
        "coverage_mean": float(best.mean()),
        "coverage_ci95": mean_ci95(best),
        "coverage_max": float(best.max()),
        "final_coverage_mean": float(final.mean()),
        "success_rate": successes / len(seeds),
        "success_ci95": wilson_ci95(successes, len(seeds)),
        "step_ms": 1000 * policy_time / steps.sum(),
        "invalid_per_episode": float(invalid.mean()),
        "mean_steps": float(steps.mean()),
        "episode_coverage": np.round(best, 4).tolist(),  # per seed, in order: paired comparisons across policies
    }
