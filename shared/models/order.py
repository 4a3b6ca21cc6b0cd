"""Orders and their line items. Money is numeric, exact, never a float."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CHAR,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import NOW, Base, new_id


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "customer_id"],
            ["customers.tenant_id", "customers.id"],
            ondelete="CASCADE",
        ),
        Index("uq_orders_tenant_id_external_id", "tenant_id", "external_id", unique=True),
        Index("ix_orders_tenant_id_customer_id_placed_at", "tenant_id", "customer_id", "placed_at"),
        Index("ix_orders_tenant_id_placed_at", "tenant_id", "placed_at", "id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(CHAR(3))
    total: Mapped[Decimal] = mapped_column(Numeric)
    channel: Mapped[str | None] = mapped_column(String(32))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_delivery_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=NOW)


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"
        ),
        Index("ix_order_items_tenant_id_category", "tenant_id", "category"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
