"""The durable scan log shared by the scanner (writer) and the sync agent (uploader).

``journal`` (``Journal.record`` commits before a verdict is signalled; upload queue; dead
letters; hash chain), ``db`` (the SQLite connection and its transactions), ``schema`` (rows),
``antipassback`` ("already used here", read from the journal itself) and ``syncstate`` (the
small file in which the sync agent tells the scanner how draining goes).
"""
