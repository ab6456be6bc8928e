#!/usr/bin/env python3
"""Writes tests/data/erlang_table.json: Erlang C reference figures computed
with the PyPI package `erlanglib` (pure Python, Decimal arithmetic, offline),
the oracle tests/erlang.rs checks our implementation against.

    pip install erlanglib && python3 scripts/erlang_table.py
"""
import json
import math
import os

import erlanglib

CASES = [
    # (calls per interval, interval seconds, AHT seconds, T seconds, target)
    (100, 1800, 180, 20, 0.8),
    (10, 900, 240, 20, 0.8),
    (50, 900, 300, 30, 0.9),
    (200, 1800, 120, 15, 0.8),
    (500, 3600, 200, 20, 0.95),
    (1, 900, 60, 20, 0.8),
    (30, 900, 420, 60, 0.7),
    (120, 900, 150, 10, 0.85),
    (1000, 3600, 240, 20, 0.8),
    (75, 1800, 600, 120, 0.8),
]


def required(rate, aht, t, target):
    a = rate * aht
    n = math.floor(a) + 1
    while True:
        pw = erlanglib.erlang_c(n, a)
        if erlanglib.service_level(n, a, pw, t, aht) >= target:
            return n
        n += 1


rows = []
for calls, secs, aht, t, target in CASES:
    rate = calls / secs
    a = rate * aht
    for n in sorted({math.floor(a) + 1, math.floor(a) + 2, math.floor(a) + 5}):
        pw = erlanglib.erlang_c(n, a)
        rows.append({
            "calls": calls, "interval_s": secs, "aht_s": aht, "threshold_s": t,
            "target": target, "traffic": a, "agents": n,
            "prob_wait": pw,
            "service_level": erlanglib.service_level(n, a, pw, t, aht),
            "asa_s": erlanglib.average_speed_of_answer(n, a, pw, aht),
            "occupancy": erlanglib.occupancy(a, n),
            "required_agents": required(rate, aht, t, target),
        })

out = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "erlang_table.json")
with open(out, "w") as f:
    json.dump({"generator": "scripts/erlang_table.py with erlanglib " + __import__("importlib.metadata").metadata.version("erlanglib"), "rows": rows}, f, indent=1)
print(f"wrote {len(rows)} rows to {out}")
