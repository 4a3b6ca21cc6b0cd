"""Customer analytics: RFM scores and segments, lifecycle stages and predicted value models."""
