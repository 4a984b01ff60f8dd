"""Bounded load test of the local prediction API (run by bench_serving.py; localhost only)."""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant_throughput, task

DAYS = os.environ.get("BENCH_DAYS", "2025-10-05").split(",")


class Dashboard(FastHttpUser):  # geventhttpclient: light enough to share 2 cores with the server
    wait_time = constant_throughput(1.0)  # each user 1 req/s: users = target req/s

    @task(4)
    def predict(self) -> None:
        self.client.post("/predict", json={"day": random.choice(DAYS)}, name="/predict")

    @task(1)
    def latest(self) -> None:
        self.client.post("/predict", json={}, name="/predict (latest)")

    @task(1)
    def ping(self) -> None:
        # the trivial endpoint under the same load: the floor locust itself and HTTP impose
        self.client.post("/ping", json={}, name="/ping")
