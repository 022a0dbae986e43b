"""The argument parser every interpserve command line uses (the server's, `check`'s and
`bench`'s), in a module of its own so that each command imports it without importing the
others."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        # Whole flags only, as uvicorn's click takes them: an abbreviation that works today
        # becomes ambiguous when a flag is added.
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
