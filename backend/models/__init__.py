"""Model discovery, base-type detection, loading and caching, and the built-in tiny models."""
