"""Seed 003 compatibility: its REST paths and Socket.IO events over our services."""
