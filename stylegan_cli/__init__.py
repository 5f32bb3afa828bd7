"""sgan: the StyleGAN family (Progressive GAN, StyleGAN, StyleGAN2) as a command-line pipeline."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sgan")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
