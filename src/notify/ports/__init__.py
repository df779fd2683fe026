"""Interfaces (typing.Protocol) that the app needs from the outside world. Adapters implement them."""
