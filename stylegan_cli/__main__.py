"""`python -m stylegan_cli`: the entry point that `torchrun -m stylegan_cli` launches."""

from stylegan_cli.cli.app import main

main()
