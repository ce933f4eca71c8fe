"""``python -m bsnn_bindsnet.cli``: the same as the ``bsnn`` console script."""

from bsnn_bindsnet.cli.main import main

if __name__ == "__main__":
    main()
