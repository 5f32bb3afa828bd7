"""The ground every layer stands on: errors, console, run-directory layout and writes, device, signals."""
