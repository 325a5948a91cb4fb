"""hlthz.tools.demo: the before/after story, end to end."""
