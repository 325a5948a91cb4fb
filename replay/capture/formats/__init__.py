"""Other tools' capture formats: GoReplay ``.gor``, HAR, nginx/Apache access logs, raw HTTP/1.x."""
