"""opscenter's benchmarks: `python -m bench` (or `make bench`) prints one table of each
figure beside a baseline measured in the same run on the same database."""
