"""Reports: HTML page and PNG figures."""
