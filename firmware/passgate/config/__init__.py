"""The checkpoint's configuration: layered TOML files (``load``) into frozen dataclasses whose
fields are the declared keys (each declared once with :mod:`passgate.options`, beside the part
that uses it; ``schema`` assembles the sections, the parts' own config classes among them).
A bad value stops the program with the file, the key and what is wrong.
"""
