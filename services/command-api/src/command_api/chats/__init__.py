"""The chats slice."""
