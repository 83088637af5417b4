"""``python -m fleetbus``: the same as the ``fleetbus`` command."""

from fleetbus.cli import main

if __name__ == "__main__":
    main()
