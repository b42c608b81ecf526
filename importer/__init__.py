"""metrix-importer: turn spreadsheet rows into Metrix user messages and send them."""

__version__ = "0.1.0"
