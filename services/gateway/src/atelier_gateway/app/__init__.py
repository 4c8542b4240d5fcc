"""Use cases of the gateway: each a small async function over ports, free of HTTP and I/O details."""
