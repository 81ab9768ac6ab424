"""Who is in which room, and how many connections each user has."""
