"""hlthz.exporter"""
