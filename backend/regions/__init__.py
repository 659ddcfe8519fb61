"""Regional prompting: per-region prompts from ``region`` inputs, applied by masked cross-attention."""
