"""``python -m elman.kernels [--force]``: build the compiled recurrences now and report.

Kept as the set-up step's entry point (the Makefile runs it); the code is in
:mod:`elman.models.native`.

Never fails: without a compiler it says so, and training
uses the Python step loops.
"""

from elman.models.native import main

if __name__ == "__main__":
    raise SystemExit(main())
