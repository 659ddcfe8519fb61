"""Prompts: A1111 syntax (weights, BREAK), long prompts in 75-token chunks, textual-inversion embeddings."""
