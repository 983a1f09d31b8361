"""One workload in a process of its own, so its peak memory is its own:
`python -m bench.workload B1 --scale full` prints one JSON line of result rows."""

import argparse
import importlib
import json
import os
import sys

WORKLOADS = {
    "B1": "bench.b1_generation",
    "B2": "bench.b2_dispatch",
    "B2t": "bench.b2t_throttled",
    "B3": "bench.b3_chain",
    "B4": "bench.b4_instance_list",
    "B5": "bench.b5_overview",
    "B6": "bench.b6_alert_storm",
    "B7": "bench.b7_time_pass",
    "B8": "bench.b8_baselines",
    "B9": "bench.b9_field_rules",
    "B10": "bench.b10_resources",
    "B11": "bench.b11_backups",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workload")
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "full"])
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opscenter.settings")
    import django

    django.setup()
    from bench import common

    module = importlib.import_module(WORKLOADS[args.workload])
    rows = module.run(args.scale)
    peak = common.peak_mb()
    # A workload whose data would change what the next one measures takes it away.
    if hasattr(module, "cleanup"):
        module.cleanup()
    for row in rows:
        if row.get("peak_mb") is None:
            row["peak_mb"] = peak
    sys.stdout.write(json.dumps({"rows": rows, "peak_mb": peak}) + "\n")


if __name__ == "__main__":
    main()
