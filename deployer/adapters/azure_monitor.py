"""Application Insights as the OpenTelemetry exporter (azure-monitor-opentelemetry), when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, as the Functions host itself reads it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

logger = logging.getLogger(__name__)

CONNECTION_VARIABLE = "APPLICATIONINSIGHTS_CONNECTION_STRING"
_configured = False


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Export spans to Application Insights if the connection string is set (once per process)."""
    global _configured
    if _configured:
        return True
    connection = environ.get(CONNECTION_VARIABLE, "")
    if not connection:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(connection_string=connection)
    _configured = True
    logger.info("telemetry.configured exporter=azure-monitor")
    return True
