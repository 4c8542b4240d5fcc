"""Run Atelier on one machine: a nats-server from its wheel, SQLite, the file blob store."""
