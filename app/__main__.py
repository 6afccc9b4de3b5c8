"""`python -m app` is the `memora` command."""

from app.cli import main

main()
