"""hlthz.tools.stack: Prometheus, Alertmanager, a webhook sink and the API on loopback."""
