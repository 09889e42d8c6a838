"""One replica delivers at a time: the Lease (lease.py), and taking over from release 0.3's replicas, their Lease
and their checkpoint (upgrade.py)."""
