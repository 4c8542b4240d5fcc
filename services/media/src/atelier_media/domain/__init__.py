"""Pure media operations: bytes in, bytes out; no blob store, no messaging."""
