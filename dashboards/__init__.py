"""hlthz.dashboards"""
