"""A run: wires the edges around the core, owns concurrency and the row accounting."""
