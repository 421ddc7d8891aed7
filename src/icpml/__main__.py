"""``python -m icpml``: the same command-line interface as ``icpml``."""

from icpml.cli import main

if __name__ == "__main__":
    main(prog_name="python -m icpml")
