"""Diffusion operations: samplers, masks, pre-fill, previews, cancellation, and the txt2img/img2img/inpaint runs."""
