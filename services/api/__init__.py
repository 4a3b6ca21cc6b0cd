"""The stateless FastAPI app."""
