"""Profile photos: fetched through the session runner, cached in the tenant's storage for a TTL."""
