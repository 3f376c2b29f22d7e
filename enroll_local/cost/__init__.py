"""The cost model: list prices (prices.py) applied to counted calls (report.py)."""
