"""wa-simulator: a stand-alone process that plays WhatsApp's servers for tests and benchmarks.

Run it with ``python -m wa_simulator`` (settings from ``SIM_*`` environment variables).
"""
