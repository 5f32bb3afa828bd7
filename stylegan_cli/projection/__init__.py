"""`sgan project`: real images into a generator's latent space (StyleGAN2 §5; docs/design.md §13)."""
