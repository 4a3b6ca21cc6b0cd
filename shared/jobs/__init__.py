"""Background jobs: the job row the API reports, the outbox, and the runner the worker uses."""
