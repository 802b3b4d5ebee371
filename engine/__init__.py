"""The rfr engine: everything but the screens. Never imports Textual or Rich."""

# First, before any engine module can import OpenVINO: switch off what would reach the network.
from engine import _offline as _offline
