from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Subcommand:
    help: str
    run: Callable[[Any, dict], None]  # (the BaseCommand, parsed options)
    configure: Callable[[Any], None] | None = None  # adds arguments to its argparse parser
