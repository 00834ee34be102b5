"""Where runs run: the backend interface (base.py) and the declared backends (backends/: docker, process, process
over SSH, Slurm), the hosts their files are on, image resolution, snapshot upload, and the ingestion of logs and
metrics."""
