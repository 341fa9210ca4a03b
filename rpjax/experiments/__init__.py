"""One module per experiment: a frozen config dataclass and `run(config) -> dict`."""
