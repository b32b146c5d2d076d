"""passgate: offline QR-pass checkpoint firmware.

The pipeline is one-way: frame -> decode -> verify -> decide -> record -> signal.
Importing this package never touches hardware; adapters import their libraries lazily.
"""

from passgate.util.version import version as _version

# Read from pyproject.toml (passgate.util.version), never written here a second time.
__version__ = _version()
