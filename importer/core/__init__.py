"""The pure core: mapping config, converters, message building, HTTP outcome rules.

No files, network, terminal or click: only the standard library, yaml and importer.errors.
"""
