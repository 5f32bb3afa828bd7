"""The command layer: the Typer app, its command table, and one module per command (docs/design.md §9)."""
