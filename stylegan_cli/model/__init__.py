"""The networks of the StyleGAN family, their losses, and the checkpoint format that rebuilds them."""
