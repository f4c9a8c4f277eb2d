"""Use cases: intake (bundle -> request), the deploy pipeline, rollback, cleanup."""
