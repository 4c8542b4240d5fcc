"""Atelier gateway: the HTTP API in front of the job event log and the read models."""
