"""``python -m applier``: the command line."""

from .cli import main

main()
