"""`python -m harness` is the `harness` command."""

from harness._entry import main

main()
