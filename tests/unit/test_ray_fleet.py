"""The fleet's adaptive limit: its policy, the coordinator's permits per account, and what an
actor's client does when the coordinator is lost. No Ray cluster: the coordinator's class runs
in this process, the actor's side against stand-ins of its handle."""

from __future__ import annotations

import asyncio
import logging
import typing

import httpx
import pytest
from pydantic import SecretStr

from dashscope_embeddings._limiter import START_CONCURRENCY, RateWindow
from dashscope_embeddings.ray._fleet import (
    OTHER,
    SUCCESS,
    THROTTLED,
    FleetLimit,
    account_key,
    outcome_of,
)

KEY = "sk-fleet-unit-secret-1357"


def _answer(pool: FleetLimit, outcome: str, count: int = 1) -> None:
    for _ in range(count):
        pool.give_back(pool.take(), outcome)


# --- the policy ------------------------------------------------------------------------------


def test_a_429_steps_the_fleet_limit_back() -> None:
    pool = FleetLimit(None)
    assert pool.limit == START_CONCURRENCY
    sent = [pool.take() for _ in range(START_CONCURRENCY)]  # a whole round on the wire
    pool.give_back(sent[-1], THROTTLED)  # the last one in was refused
    assert pool.limit == START_CONCURRENCY - 1
    for grant in sent[:-1]:
        pool.give_back(grant, SUCCESS)
    assert pool.limit == START_CONCURRENCY - 1 and pool.throttles == 1 and pool.in_flight == 0


def test_the_kth_in_flight_refused_holds_the_fleet_to_k_minus_1_until_it_probes() -> None:
    pool = FleetLimit(None)
    sent = [pool.take() for _ in range(START_CONCURRENCY)]
    assert [grant.position for grant in sent] == list(range(1, START_CONCURRENCY + 1))
    for grant in sent[4:]:  # the service took 4: the 5th to the 8th were refused
        pool.give_back(grant, THROTTLED)
    assert pool.limit == 4 and pool.throttles == 4
    for grant in sent[:4]:
        pool.give_back(grant, SUCCESS)
    assert pool.limit == 4
    # The controller (stepped back once, to 7) probes after 8 windows of successes: one more.
    _answer(pool, SUCCESS, 8 * (START_CONCURRENCY - 1) - 4)
    assert pool.limit == 5
    probe = [pool.take() for _ in range(5)]
    pool.give_back(probe[-1], THROTTLED)  # the 5th is still too many
    assert pool.limit == 4
    for grant in probe[:-1]:
        pool.give_back(grant, SUCCESS)


def test_successes_grow_the_fleet_limit() -> None:
    pool = FleetLimit(None)
    _answer(pool, SUCCESS, START_CONCURRENCY)
    assert pool.limit == START_CONCURRENCY + 1
    _answer(pool, SUCCESS, START_CONCURRENCY + 1)
    assert pool.limit == START_CONCURRENCY + 2


def test_other_outcomes_neither_grow_nor_cut() -> None:
    pool = FleetLimit(None)
    _answer(pool, OTHER, 50)
    assert pool.limit == START_CONCURRENCY and pool.in_flight == 0 and pool.throttles == 0


def test_a_declared_max_concurrency_caps_the_fleet_limit() -> None:
    pool = FleetLimit(5)
    assert pool.limit == 5
    _answer(pool, SUCCESS, 100)
    assert pool.limit == 5
    held = [pool.take() for _ in range(5)]
    assert not pool.has_room()
    pool.give_back(held.pop(), SUCCESS)
    assert pool.has_room()
    pool.set_cap(3)  # the fleet's limits were declared again, lower
    assert pool.limit == 3
    for grant in held:
        pool.give_back(grant, SUCCESS)
    third = [pool.take() for _ in range(3)][-1]
    pool.give_back(third, THROTTLED)  # the 3rd in flight was refused
    assert pool.limit == 2
    pool.set_cap(None)
    assert pool.limit == START_CONCURRENCY


def test_without_adaptation_the_limit_is_the_declared_one_or_none() -> None:
    fixed = FleetLimit(6, adaptive=False)
    _answer(fixed, THROTTLED, 10)
    assert fixed.limit == 6
    assert FleetLimit(None, adaptive=False).limit is None
    assert FleetLimit(None, adaptive=False).has_room()


def test_what_an_answer_tells_the_limit() -> None:
    assert [outcome_of(s) for s in (200, 204, 429, 400, 500, 503)] == [
        SUCCESS,
        SUCCESS,
        THROTTLED,
        OTHER,
        OTHER,
        OTHER,
    ]


def test_an_account_is_named_by_a_hash_of_its_key_its_host_and_its_model() -> None:
    name = account_key(SecretStr(KEY), "http://127.0.0.1:8123/api/v1", "text-embedding-v4")
    assert KEY not in name and name.endswith("@127.0.0.1:8123/text-embedding-v4")
    same = account_key(SecretStr(KEY), "http://127.0.0.1:8123/api/v1", "text-embedding-v4")
    other_key = account_key(
        SecretStr(KEY + "x"), "http://127.0.0.1:8123/api/v1", "text-embedding-v4"
    )
    other_host = account_key(SecretStr(KEY), "http://127.0.0.1:9000/api/v1", "text-embedding-v4")
    other_model = account_key(SecretStr(KEY), "http://127.0.0.1:8123/api/v1", "text-embedding-v3")
    assert len({name, same, other_key, other_host, other_model}) == 4


# --- the coordinator's permits, per account ----------------------------------------------------


async def test_one_accounts_429_holds_back_every_actor_of_it_and_no_other_account() -> None:
    pytest.importorskip("ray")
    from dashscope_embeddings.ray._quota import _QuotaActor

    quota = _QuotaActor("unit")
    a, b = "aaa@host/m", "bbb@host/m"
    # Three actors of account a fill its limit; the next asker waits.
    leases = [await quota.acquire(60, f"actor-{i % 3}", a) for i in range(START_CONCURRENCY)]
    waiting = asyncio.ensure_future(quota.acquire(60, "actor-0", a))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert await asyncio.wait_for(quota.acquire(60, "actor-9", b), 1) >= 0  # b is not held up
    await quota.release(leases.pop(), THROTTLED)  # one actor's 429 steps the fleet back ...
    await asyncio.sleep(0.01)
    assert not waiting.done()  # ... so the permit given back is not handed on
    stats = await quota.stats()
    assert stats.fleet_limits == {a: START_CONCURRENCY - 1, b: START_CONCURRENCY}
    assert stats.throttled == 1 and stats.processes == 4
    await quota.release(leases.pop(), SUCCESS)
    lease = await asyncio.wait_for(waiting, 1)  # now under the new limit: handed on
    await quota.release(lease, SUCCESS)
    for lease in leases:
        await quota.release(lease, SUCCESS)
    assert (await quota.stats()).in_flight == 1  # b's


async def test_the_declared_max_concurrency_caps_all_accounts_together() -> None:
    pytest.importorskip("ray")
    from dashscope_embeddings.ray._quota import NO_PERMIT, QuotaLimits, _QuotaActor

    quota = _QuotaActor("unit")
    assert await quota.acquire(60, "p", None) == NO_PERMIT  # nothing limits it
    await quota.configure(QuotaLimits(max_concurrency=3))
    held = [await quota.acquire(60, "p", "a@h/m"), await quota.acquire(60, "p", "b@h/m")]
    held.append(await quota.acquire(60, "p", None))
    over = asyncio.ensure_future(quota.acquire(60, "p", "a@h/m"))
    await asyncio.sleep(0.01)
    assert not over.done()
    stats = await quota.stats()
    assert stats.peak_in_flight == 3 and stats.fleet_limits == {"a@h/m": 3, "b@h/m": 3}
    await quota.release(held[0], SUCCESS)
    await quota.release(await asyncio.wait_for(over, 1), SUCCESS)
    for lease in held[1:]:
        await quota.release(lease)
    assert (await quota.stats()).in_flight == 0


# --- an actor's side when the coordinator is lost ------------------------------------------


class _Coordinator:
    """Stands in for the coordinator's handle: leases in order, or gone."""

    def __init__(self, name: str = "unit") -> None:
        from dashscope_embeddings.ray._quota import FleetQuota

        self.quota = FleetQuota(name, handle=None)
        self.gone = False
        self.released: list[tuple[int, str]] = []
        self.asked: list[str | None] = []
        self.leases = iter(range(100))
        self.quota.acquire = self.acquire  # type: ignore[method-assign]
        self.quota.release = self.release  # type: ignore[method-assign]
        self.quota.reserve = self.reserve  # type: ignore[method-assign]

    def _check(self) -> None:
        if self.gone:
            from dashscope_embeddings.ray._quota import FleetQuotaError

            raise FleetQuotaError("fleet quota 'unit' did not answer: the actor died")

    def acquire(self, lease_s: float, account: str | None = None, adaptive: bool = True) -> int:
        self._check()
        self.asked.append(account)
        return next(self.leases)

    def release(self, lease: int, outcome: str = OTHER) -> None:
        self.released.append((lease, outcome))

    def reserve(self, requests: int, tokens: int) -> float:
        self._check()
        return 0.0


def _fleet_client(coordinator: _Coordinator, statuses: list[int]) -> httpx.Client:
    from dashscope_embeddings.ray._budgets import PermitTransport

    answers = iter(statuses)
    inner = httpx.MockTransport(lambda request: httpx.Response(next(answers), json={}))
    transport = PermitTransport(inner, coordinator.quota, lease_s=60, account="a@h/m")
    return httpx.Client(transport=transport, base_url="http://fleet.invalid")


def test_each_attempt_gives_its_permit_back_with_its_outcome() -> None:
    pytest.importorskip("ray")
    coordinator = _Coordinator()
    with _fleet_client(coordinator, [200, 429, 500]) as client:
        statuses = [client.post("/embed").status_code for _ in range(3)]
    assert statuses == [200, 429, 500]
    assert coordinator.asked == ["a@h/m"] * 3
    assert coordinator.released == [(0, SUCCESS), (1, THROTTLED), (2, OTHER)]


def test_a_lost_coordinator_is_said_once_and_requests_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("ray")
    caplog.set_level(logging.WARNING, logger="dashscope_embeddings.ray")
    coordinator = _Coordinator("gone-unit")
    coordinator.gone = True
    with _fleet_client(coordinator, [200, 429, 200]) as client:
        statuses = [client.post("/embed").status_code for _ in range(3)]
    assert statuses == [200, 429, 200]  # sent all the same, the client's own limiter paces
    assert coordinator.quota.lost and coordinator.released == []
    warnings = [r for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(warnings) == 1 and "gone-unit" in warnings[0].getMessage()


def test_a_lost_coordinators_rates_fall_back_to_the_processs_own_windows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("ray")
    from dashscope_embeddings.ray._budgets import FleetRate

    caplog.set_level(logging.WARNING, logger="dashscope_embeddings.ray")
    coordinator = _Coordinator()
    rpm = RateWindow(2, window_s=60)
    rate = FleetRate(coordinator.quota, tokens=False, fallback=(rpm, None))
    assert rate.wait_time(1) == 0.0  # the coordinator reserved it
    rate.spend(1)
    coordinator.gone = True
    assert rate.wait_time(1) == 0.0 and rate.wait_time(1) == 0.0  # the own window: 2 ...
    assert rate.wait_time(1) > 0  # ... and no more
    assert coordinator.quota.lost
    assert sum("did not answer" in r.getMessage() for r in caplog.records) == 1
    tokens = FleetRate(coordinator.quota, tokens=True, fallback=(None, RateWindow(100)))
    assert tokens.wait_time(80) == 0.0 and tokens.wait_time(80) > 0
    assert typing.cast(typing.Any, tokens.fallback[0]) is None
