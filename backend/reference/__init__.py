"""Reference images (IP-Adapter): discovery, modes, loading onto pipelines, and the built-in tiny pair."""
