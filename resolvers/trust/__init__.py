"""Trust after the sale: the verifiable trade log."""
