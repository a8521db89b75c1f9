"""``aquasurf info``: the build and the machine as the package sees them (``build_info()``)."""
from __future__ import annotations


def cmd_info(args) -> int:
    from ..build_info import build_info, format_build_info

    for line in format_build_info(build_info()):
        print(line)
    return 0


def add_info_parser(sub) -> None:
    help_ = ("print the version, the CPU instruction level the kernels use, whether CUDA is "
             "compiled in and usable, the threads, and the torch and numpy versions")
    sp = sub.add_parser("info", help=help_, description=help_)
    sp.set_defaults(fn=cmd_info)
