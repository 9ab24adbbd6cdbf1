"""Lets `python -m meshpy` run the command line."""

from meshpy.cli import main

main()
