"""hlthz.alerts"""
