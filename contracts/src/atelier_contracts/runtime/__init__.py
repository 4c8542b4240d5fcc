"""Plumbing every Atelier process shares: NATS streams and consumers, ops endpoints, logs.

Install with the ``runtime`` extra. Nothing here connects at import time.
"""
