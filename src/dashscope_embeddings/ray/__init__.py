"""Embedding a corpus on a Ray cluster with Ray Data, the fleet sharing one account's quota.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[ray]"
        export DASHSCOPE_API_KEY="sk-..."   # on every node (the actors read it there)

Use:
    .. code-block:: python

        import ray
        from dashscope_embeddings.ray import DashScopeEmbedder

        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.read_parquet("corpus/").map_batches(
            DashScopeEmbedder,
            fn_constructor_kwargs={"model": "text-embedding-v4", "key_column": "id",
                                   "rpm": 1800, "max_concurrency": 16},
            compute=ray.data.ActorPoolStrategy(size=4),
            batch_size=256, batch_format="pyarrow", num_cpus=0.25,
        )
        ds.write_parquet("vectors/")

The quota, shared by the fleet
------------------------------
``rpm``, ``tpm`` and ``max_concurrency`` given to :class:`DashScopeEmbedder` are the
*account's*, for all its actors together. The first actor to start creates a small named
actor (``quota:<quota_name>`` in the ``dashscope-embeddings`` namespace, detached, 0 CPUs,
asyncio) that holds them; every actor's client asks it:

* **rpm / tpm: a reservation per request attempt.** Each attempt reserves one request and its
  estimated tokens in the coordinator's rolling windows (the core's ``RateWindow``), both or
  neither, in one round trip (the client's ``rpm_budget`` / ``tpm_budget`` hook). The fleet
  never sends more than the windows allow, however many actors there are.
* **max_concurrency: a permit per HTTP attempt.** The client's httpx transport takes a permit
  just before a request is sent and gives it back when the answer has been read (first come,
  first served). A permit is a lease that ends by itself ``timeout`` + 30 s later, so an actor
  killed mid-request cannot leak one. Each actor's own ceiling is twice ``max_concurrency``:
  one busy actor may use the whole account while the others wait for input, and requests wait
  in line at the coordinator, so a permit given back goes to the next one at once.
* **429s still adapt.** Inside each actor the core's adaptive limiter still steps back on
  throttling: the account's real bound may be lower than the one declared, or other programs
  may share it.

Why not give each of N actors 1/N of the quota: an actor does not know N (an autoscaling pool
changes it), a small cap splits badly (5 permits for 2 actors: 2 + 2 wastes one, 3 + 3 goes
over), and the shares of idle actors are lost (a job's last batches, uneven batches). Asking
costs one round trip per attempt for a rate reservation and one for a permit (about 1 ms each
on one machine, against tens or hundreds of milliseconds per request); the release is not
waited for. Without ``rpm`` / ``tpm`` / ``max_concurrency`` no coordinator is made, and each
actor's adaptive limiter finds its share from the 429s alone. Measured on an emulated account
of 8 requests in flight (``benchmarks/RESULTS.md``): with the fleet quota, at most 8 in flight
and no 429 at 1, 2 and 4 actors; without it, 12, 48 and 141 429s for 800 requests; equal fixed
1/N shares matched the quota's rows/s there, where N was known and the blocks were even.
``quota_name=None`` makes the limits each actor's own.

The quota actor outlives the job (two jobs on one account share it); :func:`fleet_quota_stats`
reads its counters and :func:`remove_fleet_quota` ends it. When limits change, the latest
actor to start sets them for the fleet (with a warning) and the windows start again.

Failures
--------
A row whose text the service rejects (content inspection, length), or that has no text, fails
its batch with :class:`RejectedRowsError` naming the rows by ``key_column`` (or by position in
the Ray batch). With ``on_error="skip"`` the row gets a null vector and the reason in
``<output_column>_error``; every other row keeps its own vector, never another row's.
"""

from __future__ import annotations

try:
    import ray as _ray
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name != "ray":
        raise
    raise ModuleNotFoundError(
        'dashscope_embeddings.ray needs Ray Data: pip install "dashscope-embeddings[ray]"',
        name="ray",
    ) from exc

from dashscope_embeddings.ray._embedder import DashScopeEmbedder
from dashscope_embeddings.ray._quota import (
    FleetQuota,
    FleetQuotaError,
    QuotaLimits,
    QuotaStats,
)
from dashscope_embeddings.ray._rejected import RejectedRowsError

__all__ = [
    "DashScopeEmbedder",
    "FleetQuotaError",
    "QuotaLimits",
    "QuotaStats",
    "RejectedRowsError",
    "fleet_quota_stats",
    "remove_fleet_quota",
]


def fleet_quota_stats(quota_name: str = "default") -> QuotaStats | None:
    """The counters of the fleet quota ``quota_name`` in this Ray cluster, or ``None``.

    Raises:
        FleetQuotaError: Ray is not initialised in this process, or the quota did not answer.
    """
    _need_ray(quota_name)
    quota = FleetQuota.lookup(quota_name)
    return quota.stats() if quota is not None else None


def remove_fleet_quota(quota_name: str = "default") -> bool:
    """End the fleet quota ``quota_name``; ``False`` when there was none.

    Raises:
        FleetQuotaError: Ray is not initialised in this process.
    """
    _need_ray(quota_name)
    quota = FleetQuota.lookup(quota_name)
    if quota is None:
        return False
    quota.kill()
    return True


def _need_ray(quota_name: str) -> None:
    if not _ray.is_initialized():
        raise FleetQuotaError(
            f"fleet quota {quota_name!r} lives in a Ray cluster: call ray.init() first"
        )
