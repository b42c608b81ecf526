"""Edges: each module is the only home of one outside library (csv, sqlite3, aiohttp, tqdm)."""
