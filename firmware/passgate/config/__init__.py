"""The checkpoint's configuration: layered TOML files (``load``) into frozen dataclasses whose
fields are the declared keys (``options``: one declaration per key, with a validator from
``validators``; ``schema`` assembles the sections, the hardware ones being the adapters' own
config classes). A bad value stops the program with the file, the key and what is wrong.
"""
