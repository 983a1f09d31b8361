# This test package is imported as `bench`, the name of the benchmark package at the
# repository root: let `bench.<module>` find the benchmark modules as well.
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "bench"))
