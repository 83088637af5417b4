"""The wire contract: subjects, header names and the JSON codec. Pure: no I/O."""

from fleetbus.wire.codec import decode, encode
from fleetbus.wire.subjects import Subjects, consumer_name, validate_token

__all__ = ["Subjects", "consumer_name", "decode", "encode", "validate_token"]
