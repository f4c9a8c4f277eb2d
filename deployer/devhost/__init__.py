"""``deployer dev``: hosts function_app.py locally the way the Azure Functions host does."""

from deployer.devhost.host import DevHost, HostOptions, load_app
from deployer.devhost.triggers import resolve

__all__ = ["DevHost", "HostOptions", "load_app", "resolve"]
