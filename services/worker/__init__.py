"""The arq worker: WorkerSettings and thin job functions over `shared`."""
