"""``notify-api``: the API process, what the container image runs by default (the same as ``notify api``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from notify.entrypoints import cli


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(["api", *(sys.argv[1:] if argv is None else argv)])


def run() -> None:
    sys.exit(main())
