"""The Python client SDK (RoomcastClient)."""
