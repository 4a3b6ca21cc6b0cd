"""Outbound webhooks: a store's URLs for Portrait's events, signed deliveries, retries."""
