"""``python -m secreason.cli``: the same as the ``secreason`` command."""

from secreason.cli import main

main()
