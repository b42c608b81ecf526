"""`make run`: the main job on the bundled sample data, with no credentials or network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Validate the sample export, then show the first messages it would send."""
    sample = ROOT / "sample_data" / "customers.csv"
    mapping = ROOT / "mappings" / "customers.yaml"
    out = ROOT / "demo-output"
    out.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "importer"]
    print(f"$ metrix-import validate {sample.relative_to(ROOT)} --mapping {mapping.relative_to(ROOT)}")
    subprocess.run(
        [*command, "validate", str(sample), "--mapping", str(mapping),
         "--failures", str(out / "customers.failures.csv")],
        check=False,
    )
    print(f"\n$ metrix-import preview {sample.relative_to(ROOT)} --mapping ... --rows 2")
    subprocess.run([*command, "preview", str(sample), "--mapping", str(mapping), "--rows", "2"],
                   check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
