"""hlthz.replay"""
