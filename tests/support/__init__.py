"""Harness shared by the tests and the benches: a real `bentoml serve` process, a real browser."""
