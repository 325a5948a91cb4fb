"""Hostile inputs against every file-reading command (``make fuzz``; a sample in ``make test``)."""
