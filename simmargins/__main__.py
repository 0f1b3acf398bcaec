"""``python -m simmargins``: the same command as ``simmargins``."""

from .cli.command import main

if __name__ == "__main__":
    raise SystemExit(main())
