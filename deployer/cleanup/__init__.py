"""Cleanup: a pure planner (``plan``), a paced executor (``execute``), the quota (``pacing``)."""
