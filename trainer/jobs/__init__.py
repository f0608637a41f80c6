"""Training jobs run by the trainer service: launch, supervise, recover, ingest metrics."""
