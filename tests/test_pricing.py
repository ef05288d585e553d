"""Cost estimates: token prices, an hourly deployment price, in bulk stats."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from azml_client import ConfigurationError, EndpointClient, Pricing

from .conftest import CANARY_KEY, SERVERLESS_URL

CHAT = {
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
    ],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
}


def test_token_and_hourly_prices_add_up() -> None:
    assert Pricing(input_per_1k=0.002, output_per_1k=0.006).cost(1500, 500) == pytest.approx(0.006)
    hourly = Pricing(hourly=3.6, instances=2)
    assert hourly.cost(10**6, 10**6, seconds=60) == pytest.approx(0.12)  # tokens are free here
    both = Pricing(input_per_1k=1.0, hourly=3.6)
    assert both.cost(1000, 0, seconds=1) == pytest.approx(1.001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_per_1k": -1}, "input_per_1k must be a number >= 0"),
        ({"hourly": float("nan")}, "hourly must be a number >= 0"),
        ({"output_per_1k": "1"}, "output_per_1k must be a number >= 0"),
        ({"instances": 0}, "instances must be >= 1"),
        ({"instances": 1.5}, "instances must be an integer"),
    ],
)
def test_bad_prices_say_which(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Pricing(**kwargs)


def client(**kwargs: Any) -> EndpointClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=CHAT))
    return EndpointClient(
        endpoint_url=SERVERLESS_URL, api_key=CANARY_KEY, transport=transport, **kwargs
    )


async def test_bulk_stats_estimate_the_cost_from_the_usage() -> None:
    prompts = [[{"role": "user", "content": str(i)}] for i in range(4)]
    async with client(pricing=Pricing(input_per_1k=0.01, output_per_1k=0.02)) as c:
        results = await c.batch(prompts)
        cheaper = c.with_options(pricing=Pricing(input_per_1k=0.001))
        other = await cheaper.batch(prompts)
    assert results.stats.tokens_in == 4000 and results.stats.tokens_out == 2000
    assert results.stats.cost == pytest.approx(0.08)
    assert results.stats.as_dict()["cost"] == pytest.approx(0.08)
    assert other.stats.cost == pytest.approx(0.004)


async def test_no_pricing_no_cost() -> None:
    async with client() as c:
        results = await c.batch(["x"])
    assert results.stats.cost is None and "cost" not in results.stats.as_dict()
    with pytest.raises(ConfigurationError, match="pricing must be a Pricing"):
        client(pricing={"input_per_1k": 1})
