"""Benchmark data: realistic order-export CSVs of any size, generated fast, outside the repository.

Why not one repeated row: gzip's 32 KiB window would find the repetition and report a compression
ratio no real export has, and the "ours vs. the plain SDK upload" ratio follows the compression ratio.
So rows are drawn at random (fixed seed) from plausible value sets — ids, timestamps, names, SKUs,
prices, free-text notes — into a pool of distinct 1 MiB blocks, and a large file is those blocks in a
shuffled order. Each block is far larger than the gzip window, so the compressor sees fresh data, and
generation runs at disk speed (a 5 GB file takes seconds, not the minutes a row-by-row writer needs).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

HEADER = (
    "order_id,created_at,customer_id,customer_name,email,country,sku,product,quantity,unit_price,"
    "currency,status,channel,note\n"
)
BLOCK_BYTES = 1 << 20
POOL_BLOCKS = 32

_FIRST = (
    "Jana",
    "Petr",
    "Anna",
    "Tomas",
    "Eva",
    "Martin",
    "Lucie",
    "Jakub",
    "Olivia",
    "Liam",
    "Noah",
    "Emma",
    "Sofia",
    "Lukas",
    "Mia",
    "Ben",
    "Chloe",
    "Mateo",
    "Aiko",
    "Ravi",
    "Zuzana",
    "Pavel",
    "Ines",
    "Omar",
)
_LAST = (
    "Novak",
    "Svoboda",
    "Dvorak",
    "Smith",
    "Johnson",
    "Garcia",
    "Muller",
    "Rossi",
    "Tanaka",
    "Kumar",
    "Horak",
    "Kral",
    "Nguyen",
    "Silva",
    "Kowalski",
    "Jensen",
    "Dubois",
    "Fischer",
    "Martin",
    "Brown",
)
_COUNTRIES = ("CZ", "SK", "DE", "AT", "PL", "US", "GB", "FR", "NL", "ES", "IT", "JP", "IN", "BR", "CA")
_PRODUCTS = (
    "Espresso beans 1kg",
    "Ceramic mug",
    "Pour-over kettle",
    "Burr grinder",
    "Milk jug 600ml",
    "Paper filters (100)",
    "Cold brew bottle",
    "Tamper 58mm",
    "Scale with timer",
    "Gift card",
    "Tea sampler",
    "Descaler",
    "Travel tumbler",
    "Moka pot 6-cup",
    "Knock box",
)
_STATUSES = ("paid", "paid", "paid", "shipped", "shipped", "delivered", "refunded", "cancelled", "pending")
_CHANNELS = ("web", "web", "app", "marketplace", "store", "phone")
_CURRENCIES = ("EUR", "CZK", "USD", "GBP")
_WORDS = (
    "please",
    "gift",
    "wrap",
    "deliver",
    "after",
    "5pm",
    "leave",
    "at",
    "door",
    "call",
    "before",
    "fragile",
    "invoice",
    "company",
    "VAT",
    "second",
    "floor",
    "ring",
    "twice",
    "thanks",
    "urgent",
)


@dataclass(frozen=True)
class Generated:
    path: Path
    size: int  # bytes
    rows: int  # data rows (header excluded)


class _World:
    """Customers and a product catalogue shared by every row, as in a real shop's export: names,
    emails and countries belong to a customer, product names and prices to a SKU."""

    def __init__(self, rng: random.Random) -> None:
        self.customers = []
        for number in range(20_000):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            self.customers.append(
                f"C{number + 100_000:07d},{first} {last},"
                f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com,"
                f"{rng.choice(_COUNTRIES)}"
            )
        self.products = [
            f"SKU-{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGH')},{rng.choice(_PRODUCTS)}" for _ in range(400)
        ]
        self.prices = [rng.randint(99, 99_999) / 100 for _ in self.products]


def _order(rng: random.Random, world: _World, order_id: int, when: int) -> str:
    """One order: one to four order lines sharing the order id, time, customer and status."""
    day, second = divmod(when, 86_400)
    stamp = (
        f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:"
        f"{second % 60:02d}Z"
    )
    customer = rng.choice(world.customers)
    status, channel, currency = rng.choice(_STATUSES), rng.choice(_CHANNELS), rng.choice(_CURRENCIES)
    note = ""
    if rng.random() < 0.2:
        note = '"' + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9))) + '"'
    lines = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        item = rng.randrange(len(world.products))
        lines.append(
            f"{order_id},{stamp},{customer},{world.products[item]},{rng.randint(1, 6)},"
            f"{world.prices[item]:.2f},{currency},{status},{channel},{note}\n"
        )
    return "".join(lines)


def _block(rng: random.Random, target: int) -> tuple[bytes, int]:
    world = _world()
    parts: list[str] = []
    size = rows = 0
    order_id = rng.randint(1_000_000, 90_000_000)
    when = rng.randint(0, 300 * 86_400)
    while size < target:
        order = _order(rng, world, order_id, when)
        order_id += 1
        when += rng.randint(0, 40)
        parts.append(order)
        size += len(order)
        rows += order.count("\n")
    return "".join(parts).encode(), rows


_WORLD: list[_World] = []


def _world() -> _World:
    if not _WORLD:
        _WORLD.append(_World(random.Random(3)))
    return _WORLD[0]


_POOL: list[tuple[bytes, int]] = []


def _pool() -> list[tuple[bytes, int]]:
    if not _POOL:
        rng = random.Random(7)
        _POOL.extend(_block(rng, BLOCK_BYTES) for _ in range(POOL_BLOCKS))
    return _POOL


def write_csv(path: Path, size: int, *, seed: int = 1) -> Generated:
    """A CSV of at least `size` bytes (rounded up to whole blocks; small sizes to whole rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = path.parent / f".{path.name}.writing"  # hidden name: the daemon ignores it until the rename
    written = rows = 0
    with open(tmp, "wb") as out:
        out.write(HEADER.encode())
        written = len(HEADER)
        if size < BLOCK_BYTES:
            block, rows = _block(rng, max(size - written, 1))
            out.write(block)
            written += len(block)
        else:
            pool = _pool()
            while written < size:
                block, n = pool[rng.randrange(len(pool))]
                out.write(block)
                written += len(block)
                rows += n
    os.replace(tmp, path)
    return Generated(path=path, size=written, rows=rows)


def small_csv(seed: int, size: int = 2048) -> bytes:
    """A small file (a few kB by default) for the many-files benchmarks."""
    block, _ = _block(random.Random(seed), max(size - len(HEADER), 1))
    return HEADER.encode() + block
