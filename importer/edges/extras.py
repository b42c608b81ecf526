"""Optional dependencies (pandas, polars, pyarrow, fsspec back-ends), imported on use.

The base install reads CSV and Excel with no numpy in sight; an input that needs an
extra says which ``pip install`` line brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from importer.errors import MissingExtra

_PURPOSE = {
    "parquet": "Reading Parquet or Arrow data",
    "pandas": "Reading a pandas DataFrame",
    "polars": "Reading a polars DataFrame",
    "s3": "Reading from object storage",
}


def require(module: str, extra: str, purpose: str | None = None) -> Any:
    """Import ``module`` or raise MissingExtra naming ``pip install 'metrix-importer[extra]'``."""
    try:
        found: ModuleType = importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module, extra, purpose or _PURPOSE.get(extra, "This input")) from None
    return found
