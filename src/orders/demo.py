"""``orders demo``: sample data put in through the HTTP API, like any client would."""

from __future__ import annotations

import random
from typing import Any

import httpx
from rich.console import Console

__all__ = ["run_demo"]

CUSTOMERS = [
    ("Ada Lovelace", "ada@example.com", "London"),
    ("Grace Hopper", "grace@example.com", "New York"),
    ("Alan Turing", "alan@example.com", "Manchester"),
    ("Katherine Johnson", "katherine@example.com", "Hampton"),
    ("Edsger Dijkstra", "edsger@example.com", "Eindhoven"),
]
PRODUCTS = [
    ("KB-001", "Mechanical keyboard", "89.90", 500),
    ("MS-002", "Wireless mouse", "24.50", 800),
    ("MN-003", "27-inch monitor", "279.00", 200),
    ("HD-004", "Noise-cancelling headphones", "149.99", 300),
    ("CB-005", "USB-C cable", "9.99", 2000),
    ("LS-006", "Laptop stand", "39.00", 400),
    ("WC-007", "Webcam", "59.00", 350),
    ("DK-008", "Docking station", "189.00", 150),
]


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def run_demo(base: str, staff_token: str, orders: int, console: Console) -> None:
    """Register customers, add products, place ``orders`` orders (shipping and cancelling
    some), then print requests to try."""
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {staff_token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        try:
            await client.get("/health")
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach {base}: {exc}") from None
        run = rng.getrandbits(32) ^ random.getrandbits(32)  # a second demo adds new data
        customer_ids: list[tuple[str, str]] = []
        for name, email, city in CUSTOMERS:
            local, domain = email.split("@")
            created = await _post(
                client, "/api/v1/customers", {"name": name, "email": f"{local}+{run:x}@{domain}"}
            )
            customer_ids.append((created["customer_id"], city))
        product_ids: list[str] = []
        for sku, name, price, stock in PRODUCTS:
            created = await _post(
                client,
                "/api/v1/products",
                {"sku": f"{sku}-{run:x}", "name": name, "price": price, "stock": stock},
            )
            product_ids.append(created["product_id"])
        order_ids: list[str] = []
        for n in range(orders):
            customer_id, city = rng.choice(customer_ids)
            items = [
                {"product_id": product_id, "quantity": rng.randint(1, 3)}
                for product_id in rng.sample(product_ids, rng.randint(1, 3))
            ]
            address = {
                "street": f"{rng.randint(1, 200)} High Street",
                "city": city,
                "postal_code": f"{rng.randint(10000, 99999)}",
                "country": "GB",
            }
            placed = await _post(
                client,
                "/api/v1/orders",
                {"customer_id": customer_id, "items": items, "shipping_address": address},
            )
            order_id = placed["order_id"]
            order_ids.append(order_id)
            if n % 4 == 1:
                await _post(
                    client, f"/api/v1/orders/{order_id}/ship", {"tracking_number": f"TRK{n:05d}"}
                )
            elif n % 7 == 3:
                await _post(
                    client, f"/api/v1/orders/{order_id}/cancel", {"reason": "changed my mind"}
                )
    customer_id = customer_ids[0][0]
    console.print(
        f"[bold green]demo data in place:[/] {len(customer_ids)} customers, "
        f"{len(product_ids)} products, {len(order_ids)} orders (some shipped, some cancelled)\n",
        soft_wrap=True,
    )
    console.print("[bold]Try these[/] (the token is a staff token, valid for 24 hours):\n")
    lines = [
        f"export TOKEN={staff_token}",
        f'curl -s {base}/api/v1/orders/{order_ids[0]} -H "Authorization: Bearer $TOKEN"',
        f'curl -s "{base}/api/v1/customers/{customer_id}/orders?page_size=5" '
        '-H "Authorization: Bearer $TOKEN"',
        f'curl -s "{base}/api/v1/orders/search?q=keyboard&sort_by=total_amount" '
        '-H "Authorization: Bearer $TOKEN"',
        f'curl -s "{base}/api/v1/reports/sales?from=2020-01-01&to=2030-12-31" '
        '-H "Authorization: Bearer $TOKEN"',
        f'curl -s -i -X POST {base}/api/v1/orders -H "Authorization: Bearer $TOKEN" '
        '-H "Content-Type: application/json" -H "Idempotency-Key: try-1" '
        f'-d \'{{"customer_id": "{customer_id}", "items": [{{"product_id": '
        f'"{product_ids[0]}", "quantity": 1}}], "shipping_address": {{"street": '
        '"1 Main St", "city": "London", "postal_code": "N1", "country": "GB"}}\'',
        f'curl -s {base}/api/v1/projections -H "Authorization: Bearer $TOKEN"',
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"\nThe OpenAPI page: {base}/docs", highlight=False)
