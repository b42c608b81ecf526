"""The local Metrix-compatible sandbox: a second program, importing only importer.errors."""
