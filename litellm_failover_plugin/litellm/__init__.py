"""The only place that imports litellm: the proxy plugin, the attempt loop, translations."""

from .install import install
from .plugin import FailoverPlugin, attach, proxy_plugin
from .runner import FailoverRunner

__all__ = ["FailoverPlugin", "FailoverRunner", "attach", "install", "proxy_plugin"]
