"""Training: configuration, growth schedule, distributed helpers, image stream, trainer and loop."""
