"""What a model's tokens cost: prices per million tokens, found by longest model-id prefix.

Each provider keeps its own table (``DEFAULT_PRICES``, or ``prices`` given to
it); a dated model id (``claude-sonnet-4-5-20250929``) finds its family's
price. A model with no price costs 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from runtime.providers.base import Usage

__all__ = ["Price", "cost_usd", "price_for"]


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


def price_for(model: str, prices: Mapping[str, Price]) -> Price | None:
    best = max((prefix for prefix in prices if model.startswith(prefix)), key=len, default=None)
    return prices[best] if best is not None else None


def cost_usd(model: str, usage: Usage, prices: Mapping[str, Price]) -> float:
    """What ``usage`` of ``model`` costs in US dollars; 0 for a model with no price."""
    price = price_for(model, prices)
    if price is None:
        return 0.0
    return (
        usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok
    ) / 1_000_000
