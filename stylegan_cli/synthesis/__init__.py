"""Synthesis: loading a generator, latents, truncation, mixing, interpolation, noise figures, images."""
