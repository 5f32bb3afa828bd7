"""Speed measurements behind `sgan bench`: timing, FLOP counting and the figures of BENCHMARKS.md."""
