"""The frame loop and its assembly: frame -> decode -> debounce -> verify -> decide -> record ->
signal.

``loop`` (the :class:`Checkpoint`), ``conditions`` (its fault states), ``decide`` (checkpoint policy
after the verifier), ``debounce``, ``holds`` (the relay hold and reshows), ``trustview`` (what the
scanner trusts right now), ``sdnotify`` (systemd), ``wiring`` (builds every part from the config,
the only place hardware is chosen) and ``simulate`` (the laptop checkpoint).

The scanner never opens a socket: nothing here imports ``sync``, the collector, ``socket`` or
``urllib`` (pinned by ``tests/test_layers.py``).
"""
