from importer.sandbox.cli import sandbox

sandbox()
