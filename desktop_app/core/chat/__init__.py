"""Conversations: storage (SQLite), export and import."""
