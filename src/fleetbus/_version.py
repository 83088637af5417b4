"""The version of fleetbus, in one place (the package, the images, the documents it writes)."""

__version__ = "0.1.0"
