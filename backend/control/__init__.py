"""ControlNet and T2I-Adapter models, the preprocessors that make control images, and their annotator weights."""
