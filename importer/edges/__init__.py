"""Edges: each module is the only home of one outside library or protocol (csv, sqlite3,
HTTP, tqdm)."""
