"""passgate: offline QR-pass checkpoint firmware.

The pipeline is one-way: frame -> decode -> verify -> decide -> record -> signal.
Importing this package never touches hardware; adapters import their libraries lazily.
"""

__version__ = "0.1.0"
