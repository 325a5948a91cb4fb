"""hlthz.tools"""
