"""The original design's stack for `stores`: Python + httpx, GET PD's stores and print them as
JSON. The end_to_end bench times it beside `operator subject tikv stores --output json`."""

import json
import sys

import httpx

pd = sys.argv[1]
response = httpx.get(f"{pd}/pd/api/v1/stores", timeout=5.0)
response.raise_for_status()
stores = []
for s in response.json().get("stores", []):
    store, status = s.get("store", {}), s.get("status", {})
    stores.append(
        {
            "id": store.get("id"),
            "address": store.get("address"),
            "state": store.get("state_name", "").lower(),
            "version": store.get("version", ""),
            "leader_count": status.get("leader_count", 0),
            "region_count": status.get("region_count", 0),
        }
    )
print(json.dumps(stores, indent=2))
