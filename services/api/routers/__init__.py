"""HTTP routers, one per domain: parse, call the service, shape the answer."""
