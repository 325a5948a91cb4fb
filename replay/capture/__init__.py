"""hlthz.replay.capture: the capture half of :mod:`hlthz.replay` (format v1, redaction, recording,
importers and exporters, inspect). It never imports the replay half."""
