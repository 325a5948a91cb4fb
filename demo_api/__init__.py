"""hlthz.demo_api"""
