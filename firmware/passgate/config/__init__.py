"""The checkpoint's configuration: layered TOML files (``load``) into frozen dataclasses
(``schema``). A bad value stops the program with the file, the key and what is wrong.
"""
