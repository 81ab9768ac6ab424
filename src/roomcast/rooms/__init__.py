"""Room names, the registry of room kinds, and who may join which room."""
