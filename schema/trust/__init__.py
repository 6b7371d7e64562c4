"""Trust after the sale in the graph: the verifiable trade log."""
