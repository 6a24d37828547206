"""``python -m runnerpool``: the same as the ``runnerpool`` command."""

from runnerpool.cli import main

main()
