"""Request bodies of the demo API (pydantic), published in its OpenAPI document.

Bounds are part of the contract: ids fit a 32-bit column on every back end, quantities and
lists are capped, and unknown fields are refused, so bad input is a 422 that names the field,
never a database error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_ID = 2**31 - 1


class ProductUpdate(BaseModel):
    """``PUT /api/products/{product_id}``: the fields to change (at least one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    price_cents: int | None = Field(None, ge=1, le=100_000_000)
    description: str | None = Field(None, max_length=20_000)

    @model_validator(mode="after")
    def _not_empty(self) -> ProductUpdate:
        if not self.model_fields_set - {k for k, v in self.model_dump().items() if v is None}:
            raise ValueError("give at least one of name, price_cents, description")
        return self


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(ge=1, le=100)


class OrderCreate(BaseModel):
    """``POST /api/orders``: who orders what."""

    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=1, le=MAX_ID)
    items: list[OrderLine] = Field(min_length=1, max_length=50)
