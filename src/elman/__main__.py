"""``python -m elman``."""

from elman.cli import run

if __name__ == "__main__":
    run()
