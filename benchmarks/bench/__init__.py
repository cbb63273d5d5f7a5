"""The pieces of `benchmarks/run.py` (the entry point: its arguments and `main`), one concern
per module:

- `common`: units and the progress log on stderr.
- `data`: the data sets (full and `--quick` sizes) and what the server serves for them.
- `server`: nginx on 127.0.0.1 and the statistics of its access log.
- `measure`: one client run under `/usr/bin/time -v`, measured (`Run`, `Runner`).
- `tools`: the command lines and inputs of mlhub-sync and every reference (`Tools`).
- `checks`: the clients' output on disk: checked, summed, damaged.
- `scenarios`: the scenarios S1-S6 (`Bench`).
- `profile`: `--profile`: one S1 apply under py-spy and strace, summarised.
- `report`: the Markdown tables, ratios and target verdicts.
- `machine`: what ran where: the code's commit, the machine, file systems, tool versions.

They import `gen_assets` and `gen_catalog` from `benchmarks/`, which `run.py` puts on
`sys.path`.
"""
