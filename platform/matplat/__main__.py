"""``python -m matplat`` runs the ``platform`` command."""

from matplat.cli import main

if __name__ == "__main__":
    main()
