"""Getting store data in: webhook signatures and platform payload mapping."""
