"""Hostile inputs against every file-reading command (``make fuzz``; a sample runs in ``make test``)."""
