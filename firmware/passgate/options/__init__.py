"""The kit every part uses to declare its config keys: :mod:`~passgate.options.declare`
(``option()``, ``check()``: one dataclass field per key, with a default, a validator and a
one-line meaning) and :mod:`~passgate.options.validators` (one small function per kind of
value, kvmd-style).

It sits in the lowest layers (it imports only :mod:`passgate.errors` and :mod:`passgate.util`)
so that each part declares its own keys beside its code - the camera, the display and the
signals in ``hardware/``, the clock in ``clock/``, anti-passback in ``journal/`` - without
importing :mod:`passgate.config`, which sits above them and assembles the sections.
"""
