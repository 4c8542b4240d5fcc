"""Pure export operations: building bundles from files and a manifest; no blob store, no messaging."""
