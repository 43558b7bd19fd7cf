"""`python -m dst3d_addon.cli ...`: the batch script (the installed package's render workers run this)."""

from . import console_main

if __name__ == "__main__":
    console_main()
