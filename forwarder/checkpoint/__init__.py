"""What was delivered, remembered across restarts: positions and dedup by time bucket (ledger.py, dedup.py), their
encodings (codec.py), where they are kept (store.py) and when they are saved (policy.py)."""
